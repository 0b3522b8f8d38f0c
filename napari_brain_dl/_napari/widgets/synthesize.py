""""Synthesize" dock widget: fill a missing MR contrast from the acquired ones.

Choose the acquired contrasts among the viewer's image layers (preselected from their
names; synthetic layers are never preselected), the contrast to synthesize (T1, T2 or FLAIR:
T1c is never synthesised) and the method (the project's model ``synth-mri``, which takes
whichever contrasts are chosen, or histogram matching), then Run:
`core.tasks.synthesize.synthesize` runs in a worker thread with progress and Cancel, and the
status line names the contrasts used.

The result can never pass for an acquired scan: its layer is named "... (synthetic)",
shown in a tinted colour map, carries ``metadata["synthetic"] = True`` with the
synthesis record, and files saved from it are stamped (name suffix, NIfTI description
and intent). "Side by side" turns on napari's grid view to compare it with the real
contrasts, opened on the tumour's (or else the brain's) centre slice, each panel zoomed to fit.
"""

from __future__ import annotations

from typing import Any

import napari.viewer
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container
from napari.utils.notifications import show_info

from ...core.progress import CancelToken
from ..dock_layout import adopt
from ..layers import is_synthetic_layer, layer_contrast, layer_volume, same_layer, volume_to_layer_data
from .run_model import DEVICES
from .task_panel import TaskPanel

NONE = "(none)"
CONTRASTS = (("t1", "T1"), ("t1c", "T1c"), ("t2", "T2"), ("flair", "FLAIR"))
TARGETS = ("FLAIR", "T2", "T1")  # T1c is never synthesised
#: A warm tint that keeps grey-level anatomy readable but never looks like an acquired scan.
SYNTHETIC_COLORMAP = {"colors": [[0.0, 0.0, 0.0, 1.0], [1.0, 0.55, 0.85, 1.0]], "name": "synthetic (tinted)"}


def synthetic_layer_kwargs() -> dict[str, Any]:
    """Layer keyword arguments that mark an image layer as synthetic."""
    from napari.utils.colormaps import Colormap

    return {"colormap": Colormap(**SYNTHETIC_COLORMAP), "blending": "translucent"}


class SynthesizeWidget(TaskPanel, Container):
    """Synthesize a missing contrast from the viewer's image layers.

    Attributes tests may set: ``t1.value``, ``t1c.value``, ``t2.value``, ``flair.value``
    (layer names or "(none)"), ``target.value`` ("FLAIR", "T2", "T1"),
    ``method.value``, ``device.value``, ``side_by_side.value``, ``synchronous``;
    ``run()``, ``cancel()``.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self.synchronous = False
        self.t1 = ComboBox(label="T1", choices=self._layer_choices)
        self.t1c = ComboBox(label="T1c", choices=self._layer_choices)
        self.t2 = ComboBox(label="T2", choices=self._layer_choices)
        self.flair = ComboBox(label="FLAIR", choices=self._layer_choices)
        self.target = ComboBox(label="Synthesize", choices=list(TARGETS), value="FLAIR",
                               tooltip="T1c is never synthesised: contrast uptake cannot be inferred")
        self.method = ComboBox(label="Method", choices=self._method_choices)
        self.device = ComboBox(label="Device", choices=list(DEVICES), value="auto")
        self.side_by_side = CheckBox(text="Side by side (grid view)", value=True,
                                     tooltip="The result beside the real contrasts, one panel each")
        self.extend([self.t1, self.t1c, self.t2, self.flair, self.target, self.method, self.device,
                     self.side_by_side, *self.task_controls("Choose the acquired contrasts and the one to "
                                                            "synthesize.")])
        for box in (self.t1, self.t1c, self.t2, self.flair, self.target):
            box.changed.connect(self._update_methods)
        viewer.layers.events.inserted.connect(self._layers_changed)
        viewer.layers.events.removed.connect(self._layers_changed)
        self._layers_changed()
        adopt(self)  # one scrollable tab in the shared dock column

    # -- choices --------------------------------------------------------------------------------
    def _layer_choices(self, _widget: Any = None) -> list[str]:
        from napari.layers import Image

        return [NONE, *(layer.name for layer in self._viewer.layers
                        if isinstance(layer, Image) and layer.ndim == 3 and not layer.rgb)]

    def present(self) -> list[str]:
        """Contrasts chosen as sources ("T1", "T1c", ...)."""
        return [label for key, label in CONTRASTS if getattr(self, key).value not in (None, NONE)]

    def _method_choices(self, _widget: Any = None) -> list[tuple[str, str]]:
        from ...core.tasks.synthesize import synthesis_methods

        try:
            methods = synthesis_methods(self.present(), self.target.value)
        except (OSError, ValueError):
            methods = ["histogram"]
        return [("histogram matching (baseline)" if m == "histogram" else m, m) for m in methods]

    def _update_methods(self, *_: Any) -> None:
        current = self.method.value
        self.method.reset_choices()
        if current in self.method.choices:
            self.method.value = current

    def _layers_changed(self, event: Any = None) -> None:
        # preselect among a newly inserted layer only (all layers when the widget opens)
        new = [event.value] if getattr(event, "type", "") == "inserted" else list(self._viewer.layers)
        for key, _label in CONTRASTS:
            box = getattr(self, key)
            current = box.value
            box.reset_choices()
            if current in box.choices:
                box.value = current
            if box.value in (None, NONE):  # preselect an acquired layer of that contrast
                match = [layer.name for layer in new
                         if layer.name in box.choices and layer_contrast(layer) == key
                         and not is_synthetic_layer(layer)]
                box.value = match[0] if match else NONE
        missing = [label for label in TARGETS if label not in self.present()]
        if self.target.value in self.present() and missing:
            self.target.value = "FLAIR" if "FLAIR" in missing else missing[0]
        self._update_methods()

    def _sources(self) -> dict[str, Any]:
        """Chosen layers as Volumes on their own grids (UI thread); ValueError with a sentence."""
        chosen = {label: getattr(self, key).value for key, label in CONTRASTS}
        sources = {label: name for label, name in chosen.items() if name not in (None, NONE)}
        if not sources:
            raise ValueError("Choose at least one acquired contrast to synthesize from.")
        if self.target.value in sources:
            raise ValueError(f"{self.target.value} is already there (layer {sources[self.target.value]!r}); "
                             "choose a contrast that is missing.")
        synthetic = [name for name in sources.values() if is_synthetic_layer(self._viewer.layers[name])]
        if synthetic:
            raise ValueError(f"Layer {synthetic[0]!r} is itself synthetic; use acquired scans only.")
        return {label: layer_volume(self._viewer.layers[name]) for label, name in sources.items()}

    # -- running ----------------------------------------------------------------------------------
    def run(self, *_: Any) -> None:
        """Synthesize the target contrast (worker thread unless `synchronous`); adds one marked layer."""
        try:
            sources = self._sources()
        except ValueError as exc:
            self.say(str(exc))
            return
        target, method, device = self.target.value, self.method.value or "auto", self.device.value

        def work(progress: Any, cancel: CancelToken, notify: Any) -> Any:
            from ...core.tasks.synthesize import synthesize

            progress(0, 1, "Loading the model")
            return synthesize(sources, target, method=method, device=device, progress=progress, cancel=cancel)

        self._used = [getattr(self, key).value for key, label in CONTRASTS if label in sources]
        self.start_task(work, "Synthesize", f"Synthesizing {target}...", self._add_result, self._error)

    def _add_result(self, result: Any) -> None:
        from napari.layers import Layer

        if self.cancelled_result():
            return
        image = result.image
        metadata = {"synthetic": True, "synthesis": image.meta.get("synthesis", {}),
                    "provenance": dict(result.provenance)}
        layer = self._viewer.add_layer(Layer.create(*volume_to_layer_data(
            image, "image", name=image.name, metadata=metadata, **synthetic_layer_kwargs())))
        if self.side_by_side.value:  # the result beside its sources, where there is something to see
            for other in self._viewer.layers:
                other.visible = same_layer(other, layer) or other.name in self._used
            show_side_by_side(self._viewer, layer, focus_point(self._viewer, layer))
        self._viewer.layers.selection.active = layer
        for note in result.notes:
            show_info(note)
        self._finish(f"{layer.name} made by {result.method} from {', '.join(result.sources)} in "
                     f"{result.provenance.get('seconds', 0):.1f} s; it is not an acquired scan.")

    def _error(self, exc: BaseException) -> None:
        self.task_failed(exc, "The synthesis")


def focus_point(viewer: napari.viewer.Viewer, layer: napari.layers.Layer) -> np.ndarray:
    """World point at the centre of a tumour label layer on `layer`'s grid, else of the brain.

    The brain is where `layer` (a synthetic image) is above its background value. Layers are
    compared by shape and name, never by identity (napari hands plugins proxies).
    """
    from napari.layers import Labels

    data = np.asarray(layer.data)
    mask = None
    for other in viewer.layers:
        if isinstance(other, Labels) and other.name != layer.name and np.shape(other.data) == data.shape:
            labels = np.asarray(other.data)
            if labels.any():
                mask = labels > 0
                break
    if mask is None:
        mask = data > data.min()
    centre = np.argwhere(mask).mean(0) if mask.any() else (np.asarray(data.shape) - 1) / 2
    return np.asarray(layer.data_to_world(centre), float)


def show_side_by_side(viewer: napari.viewer.Viewer, layer: napari.layers.Layer, point: np.ndarray) -> None:
    """Grid view of the visible layers on the slice through `point`, the grid shape chosen so each
    panel is as large as the canvas allows, then zoomed to fit."""
    from ..display import LETTERS_LAYER, grid

    shown = [other for other in viewer.layers if other.visible and other.name != LETTERS_LAYER]
    n = max(len(shown), 1)
    displayed = list(viewer.dims.displayed)
    for axis in range(viewer.dims.ndim):
        if axis not in displayed and axis < len(point):
            viewer.dims.set_point(axis, float(point[axis]))
    size = getattr(getattr(viewer, "canvas", None), "size", None)
    height, width = (size if size is not None and min(size) > 1 else (800, 800))
    extent = np.asarray(layer.extent.world[1] - layer.extent.world[0], float)[displayed]
    rows = max(range(1, n + 1), key=lambda r: min(height / (r * extent[0]),
                                                  width / (-(-n // r) * extent[1])))
    view = grid(viewer)
    view.shape, view.enabled = (rows, -1), True
    viewer.reset_view()
