""""Super-resolve" dock widget: a thick-slice scan -> an isotropic volume over the same field of view.

Choose an image layer, the method (self-supervised: filters and a small CNN learnt on this
scan's own in-plane slices, degraded to the slice profile, and applied through-plane; B-spline
interpolation; or a model card of task super_resolution) and the target spacing (0 = the
in-plane spacing), then Run: `core.tasks.super_resolve.super_resolve` runs in a worker
thread with progress and Cancel. The result is a new image layer on its own isotropic
grid, overlapping the source in the viewer, named "... (super-resolved)" and carrying its
provenance. A scan that is already isotropic is left alone with a note.
"""

from __future__ import annotations

from typing import Any

import napari.viewer
from magicgui.widgets import ComboBox, Container, FloatSpinBox
from napari.utils.notifications import show_info

from ...core.models import default_registry
from ...core.progress import CancelToken
from ..dock_layout import adopt
from ..layers import layer_volume, volume_to_layer_data
from .run_model import DEVICES
from .task_panel import TaskPanel

BUILT_IN = (("self-supervised (learnt on this scan)", "self-supervised"),
            ("B-spline interpolation", "bspline"))


class SuperResolveWidget(TaskPanel, Container):
    """Super-resolve one image layer of the viewer.

    Attributes tests may set: ``image.value`` (layer name), ``method.value``
    ("self-supervised", "bspline" or a card id), ``spacing.value`` (mm, 0 = in-plane),
    ``device.value``, ``synchronous``; ``run()``, ``cancel()``.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self.synchronous = False
        self.image = ComboBox(label="Image", choices=self._layer_choices)
        self.method = ComboBox(label="Method", choices=self._method_choices, value="self-supervised")
        self.spacing = FloatSpinBox(label="Spacing (mm)", value=0.0, min=0.0, max=10.0, step=0.1,
                                    tooltip="Isotropic voxel size of the result; 0 = the in-plane spacing.")
        self.device = ComboBox(label="Device", choices=list(DEVICES), value="auto")
        self.extend([self.image, self.method, self.spacing, self.device,
                     *self.task_controls("Choose a thick-slice scan, then Run.")])
        self.image.changed.connect(self._describe)
        viewer.layers.events.inserted.connect(self._layers_changed)
        viewer.layers.events.removed.connect(self._layers_changed)
        self._layers_changed()
        adopt(self)  # one scrollable tab in the shared dock column

    def _layer_choices(self, _widget: Any = None) -> list[str]:
        from napari.layers import Image

        return [layer.name for layer in self._viewer.layers
                if isinstance(layer, Image) and layer.ndim == 3 and not layer.rgb]

    def _method_choices(self, _widget: Any = None) -> list[tuple[str, str]]:

        try:
            cards = [c for c in default_registry().cards() if c.task == "super_resolution"]
        except (OSError, ValueError):
            cards = []
        return [*BUILT_IN, *((c.name + ("" if c.available else " (weights missing)"), c.id) for c in cards)]

    def _layers_changed(self, *_: Any) -> None:
        current = self.image.value
        self.image.reset_choices()
        if current in self.image.choices:
            self.image.value = current
        self._describe()

    def _describe(self, *_: Any) -> None:
        """Show the chosen layer's voxel size, so the user sees which axis is thick."""
        name = self.image.value
        if name and name in self._viewer.layers and self._cancel is None:  # not while running
            spacing = layer_volume(self._viewer.layers[name]).spacing
            self.status.value = f"{name}: voxels {' x '.join(f'{s:.2f}' for s in spacing)} mm."

    # -- running ----------------------------------------------------------------------------------
    def run(self, *_: Any) -> None:
        """Super-resolve the chosen layer (worker thread unless `synchronous`); adds one layer."""
        name = self.image.value
        if not name or name not in self._viewer.layers:
            self.say("Choose the image layer to super-resolve.")
            return
        source = self._viewer.layers[name]
        try:
            volume = layer_volume(source)
        except ValueError as exc:
            self.say(str(exc))
            return
        method, device = self.method.value or "self-supervised", self.device.value
        spacing = float(self.spacing.value) or None

        def work(progress: Any, cancel: CancelToken, notify: Any) -> Any:
            from ...core.tasks.super_resolve import super_resolve

            return super_resolve(volume, method=method, spacing=spacing, device=device,
                                 progress=progress, cancel=cancel)

        self._source = source
        self.start_task(work, "Super-resolve", f"Super-resolving {name}...", self._add_result, self._error)

    def _add_result(self, result: Any) -> None:
        from napari.layers import Layer

        if self.cancelled_result():
            return
        source = self._source
        kwargs: dict[str, Any] = {"metadata": {"provenance": dict(result.provenance)}}
        if source in self._viewer.layers:
            kwargs.update(colormap=source.colormap, contrast_limits=tuple(source.contrast_limits))
        layer = self._viewer.add_layer(Layer.create(*volume_to_layer_data(
            result.image, "image", name=result.image.name, **kwargs)))
        self._viewer.layers.selection.active = layer
        for note in result.notes:
            show_info(note)
        spacing = " x ".join(f"{s:.2f}" for s in result.image.spacing)
        checked = result.provenance.get("self_check", {}).get("sentence", "")
        self._finish(f"{layer.name}: {spacing} mm by {result.method} "
                     f"in {result.provenance.get('seconds', 0):.0f} s. {checked}".strip())

    def _error(self, exc: BaseException) -> None:
        from ...core.tasks.super_resolve import NothingToDo

        if isinstance(exc, NothingToDo):  # already isotropic: a note, not a failure
            show_info(str(exc))
            self._finish(str(exc))
            return
        self.task_failed(exc, "The super-resolution")
