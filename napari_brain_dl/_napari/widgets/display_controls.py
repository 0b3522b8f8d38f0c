""""Display" dock widget: view plane, radiological/neurological, window presets."""

from __future__ import annotations

from typing import Any

import napari.viewer
from magicgui.widgets import ComboBox, Container, Label, PushButton

from .. import display
from ..dock_layout import adopt


class DisplayControls(Container):
    """View plane, left/right convention and window presets for the selected image.

    Window/level by mouse: Ctrl + left-drag on the canvas (up/down = level,
    left/right = width); napari's pan (drag) and zoom (wheel) are unchanged.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        display.install(viewer)
        self.view = ComboBox(label="View", choices=["axial", "coronal", "sagittal"], value="axial")
        self.convention = ComboBox(label="Left/right", choices=list(display.CONVENTIONS),
                                   value=display.convention(viewer),
                                   tooltip="radiological: patient left on screen right")
        self.window = ComboBox(label="Window", choices=list(display.PRESETS), value="lesion")
        self.apply_window = PushButton(text="Apply window to selected image")
        self.hint = Label(value="Ctrl + drag: level (up/down), width (left/right)")
        self.extend([self.view, self.convention, self.window, self.apply_window, self.hint])
        self.view.changed.connect(lambda value: display.show_view(viewer, value))
        self.convention.changed.connect(lambda value: display.set_convention(viewer, value))
        self.window.changed.connect(self._apply)
        self.apply_window.changed.connect(self._apply)
        adopt(self)  # one scrollable tab in the shared dock column

    def _apply(self, *_: Any) -> None:
        layer = display.target_image(self._viewer)
        if layer is not None:
            display.apply_window(layer, self.window.value)
