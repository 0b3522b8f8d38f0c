"""Click-to-segment for the "Segment tumour" widget: clicks -> whole-tumour mask, with undo/redo.

Left click adds a positive click (green point), right click or Shift + left click a
negative one (magenta). Each click runs `ClickSegmenter.update` off the UI thread; the
segmenter session is kept per exam, so the scans are normalised once. Clicks made while
an update runs are **queued**: they show at once and the next update uses all of them
(updates are coalesced, none is lost). The mask layer ("tumor (clicks)", 1 = whole
tumour) is updated in place, and every finished update is one Undo / Redo step that
restores the mask and the points together.

Clicks are voxel indices of FLAIR's own array (the core Volume), not napari display
coordinates: `display_to_voxel` / `voxel_to_display` convert through the layer geometry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import napari.viewer
import numpy as np
from magicgui.widgets import CheckBox, Container, Label, PushButton
from napari.utils.notifications import show_error, show_info

from ...core.progress import CancelToken
from ...core.volume import Volume
from ..layers import GEOMETRY, same_layer, volume_to_layer_data
from . import is_cancelled, run_task

CLICK_MODEL = "brats-tumor-click"
POINTS_LAYER = "tumor clicks"
MASK_LAYER = "tumor (clicks)"
COLORS = {True: (0.1, 0.9, 0.1, 1.0), False: (1.0, 0.0, 1.0, 1.0)}  # positive green, negative magenta
MAX_HISTORY = 50
POINT_MM = 9  # click markers: large, with a white ring, so they show on any tissue
#: Layer metadata key marking a tumour labels layer: "brats" (labels 1-3) or "whole" (0/1 mask).
TUMOR_KIND = "brain_dl_tumor"

Voxel = tuple[int, int, int]


# -- geometry: display (layer data) index <-> voxel index of the source array ----------------
def _orientation(layer: napari.layers.Layer) -> tuple[np.ndarray, tuple[int, ...]]:
    """(nibabel orientation transform, native shape) of a layer; identity without a record."""
    record = layer.metadata.get(GEOMETRY)
    if record is None:
        return np.array([[0, 1], [1, 1], [2, 1]], float), tuple(np.shape(layer.data))
    return np.asarray(record["orientation_transform"], float), tuple(record["native_shape"])


def display_to_index(layer: napari.layers.Layer, point: Any) -> list[float]:
    """Continuous index (i, j, k) of the source array under a layer data point (may lie outside)."""
    transform, shape = _orientation(layer)
    d = np.asarray(point, float)[-3:]
    out = []
    for axis, (new_axis, flip) in enumerate(transform):
        value = float(d[int(new_axis)])
        out.append(shape[axis] - 1 - value if flip < 0 else value)
    return out


def display_to_voxel(layer: napari.layers.Layer, point: Any) -> Voxel | None:
    """Voxel index (i, j, k) of the source array under a layer data point; None outside the grid."""
    shape = _orientation(layer)[1]
    out = [int(v) for v in display_to_index(layer, np.rint(np.asarray(point, float)))]  # whole numbers
    if any(not 0 <= v < s for v, s in zip(out, shape, strict=True)):
        return None
    return out[0], out[1], out[2]


def voxel_to_display(layer: napari.layers.Layer, voxel: Any) -> np.ndarray:
    """Layer data index of a voxel index of the source array (inverse of `display_to_voxel`)."""
    transform, shape = _orientation(layer)
    out = np.zeros(3)
    for axis, (new_axis, flip) in enumerate(transform):
        value = float(voxel[axis])
        out[int(new_axis)] = shape[axis] - 1 - value if flip < 0 else value
    return out


class ClickController(Container):
    """Click mode: a toggle, Undo / Redo / Clear and a status line.

    `exam` is called when a session starts and returns ``(flair_layer, flair, t1c)``
    (Volumes on their source grids) or raises ValueError with a sentence. Tests may
    call ``add_click(data_point, positive)`` (FLAIR layer data coordinates), set
    ``segmenter_factory(flair, t1c)`` and ``synchronous``.
    """

    def __init__(self, viewer: napari.viewer.Viewer, exam: Callable[[], tuple[Any, Volume, Volume]],
                 on_mask: Callable[[Any, dict[str, Any]], None] | None = None) -> None:
        super().__init__(labels=False, layout="vertical")
        self._viewer, self._exam, self._on_mask = viewer, exam, on_mask
        self.synchronous = False
        self.model = CLICK_MODEL
        self.device = "auto"
        self.segmenter_factory: Callable[[Volume, Volume], Any] | None = None
        self._session: Any = None
        self.provenance: dict[str, Any] = {}
        self._flair_layer: napari.layers.Layer = None
        self._clicks: list[tuple[Voxel, bool]] = []  # voxel, positive (shown and queued ones included)
        self._undo: list[tuple[int, bytes]] = []  # (number of clicks, packed mask) per finished update
        self._redo: list[tuple[list[tuple[Voxel, bool]], bytes]] = []
        self._busy = False
        self._generation = 0  # bumped by reset(): a late result of an old exam is dropped
        self.worker: Any = None
        self.toggle = CheckBox(text="Click mode",
                               tooltip="Left click: tumour; right or Shift+left click: not tumour")
        self.undo_button = PushButton(text="Undo", enabled=False, tooltip="Undo the last click")
        self.redo_button = PushButton(text="Redo", enabled=False, tooltip="Redo the click undone")
        self.clear_button = PushButton(text="Clear", enabled=False, tooltip="Remove every click")
        self.status = Label(value="")
        buttons = Container(layout="horizontal", labels=False,
                            widgets=[self.undo_button, self.redo_button, self.clear_button])
        self.extend([self.toggle, buttons, self.status])
        self.toggle.changed.connect(self._toggled)
        self.undo_button.changed.connect(self.undo)
        self.redo_button.changed.connect(self.redo)
        self.clear_button.changed.connect(self.clear)

    # -- mode -----------------------------------------------------------------------------
    @property
    def points(self) -> Any:
        """The "tumor clicks" Points layer (created on first use)."""
        layers = self._viewer.layers
        if POINTS_LAYER not in layers:
            ref = self._flair_layer
            layer = self._viewer.add_points(np.empty((0, 3)), name=POINTS_LAYER, size=POINT_MM, ndim=3,
                                            scale=ref.scale, translate=ref.translate, border_width=0.2,
                                            border_width_is_relative=True, border_color="white",
                                            out_of_slice_display=False)
            self._viewer.layers.selection.active = layer
        return layers[POINTS_LAYER]

    @property
    def mask(self) -> Any | None:
        """The "tumor (clicks)" Labels layer, None before the first update."""
        return next((layer for layer in self._viewer.layers if layer.name == MASK_LAYER), None)

    def _toggled(self, on: bool) -> None:
        callbacks = self._viewer.mouse_drag_callbacks
        if not on:
            if self._on_mouse in callbacks:
                callbacks.remove(self._on_mouse)
            self.status.value = "Click mode off."
            return
        try:
            layer, _, _ = self._exam()
        except ValueError as exc:
            show_error(str(exc))
            self.status.value = str(exc)
            self.toggle.value = False
            return
        if not same_layer(layer, self._flair_layer):
            self.reset()
            self._flair_layer = layer
        points = self.points
        points.mode = "pan_zoom"  # the clicks are ours, not napari's "add point" tool
        self._viewer.layers.selection.active = points
        if self._on_mouse not in callbacks:
            callbacks.append(self._on_mouse)
        self.status.value = "Click on the tumour (left) or outside it (right / Shift+left)."

    def reset(self) -> None:
        """Forget the session and the clicks (another exam was chosen)."""
        self._session, self._flair_layer = None, None
        self._clicks, self._undo, self._redo = [], [], []
        self._generation += 1
        self._update_buttons()

    def _on_mouse(self, viewer: napari.viewer.Viewer, event: Any) -> Any:
        """Viewer mouse callback: a click (not a drag) on the canvas adds a click."""
        if self._flair_layer is None:
            return
        start = np.asarray(getattr(event, "pos", (0, 0)), float)
        yield
        while event.type == "mouse_move":
            if np.abs(np.asarray(getattr(event, "pos", start), float) - start).max() > 3:
                return  # a drag (pan): not a click
            yield
        positive = event.button == 1 and "Shift" not in {str(m) for m in event.modifiers}
        if event.button not in (1, 2):
            return
        self.add_click(self._flair_layer.world_to_data(event.position), positive)

    # -- clicks ---------------------------------------------------------------------------
    def add_click(self, data_point: Any, positive: bool) -> bool:
        """Add a click at a FLAIR layer data point; False (and a sentence) when outside the scan."""
        layer = self._flair_layer
        voxel = display_to_voxel(layer, data_point) if layer is not None else None
        if voxel is None:
            self.status.value = "That click is outside the scan; click on the image."
            return False
        self._redo.clear()  # a new click after an Undo replaces what Redo would bring back
        self._clicks.append((voxel, positive))
        self._show_points()
        if self._busy:
            self.status.value = f"Busy: the click is queued ({self._pending()} waiting)."
        elif not any(p for _, p in self._clicks):
            self.status.value = "Not-tumour click kept; now click inside the tumour (left click)."
        else:
            self._start_update()
        return True

    def _pending(self) -> int:
        done = self._undo[-1][0] if self._undo else 0
        return len(self._clicks) - done

    def _show_points(self) -> None:
        layer = self._flair_layer
        points = self.points
        coords = np.array([voxel_to_display(layer, v) for v, _ in self._clicks]).reshape(-1, 3)
        points.data = coords
        points.features = {"sign": ["positive" if p else "negative" for _, p in self._clicks]}
        if len(coords):
            points.face_color = np.array([COLORS[p] for _, p in self._clicks])
        points.refresh()

    def _start_update(self) -> None:
        try:
            _, flair, t1c = self._exam() if self._session is None else (None, None, None)
        except ValueError as exc:
            show_error(str(exc))
            self.status.value = str(exc)
            return
        clicks = list(self._clicks)
        fg = [v for v, p in clicks if p]
        bg = [v for v, p in clicks if not p]
        session, factory = self._session, self.segmenter_factory or self._default_factory
        generation = self._generation

        def work(progress: Any, cancel: CancelToken, notify: Any) -> Any:
            nonlocal session
            if session is None:
                progress(0, 1, "Preparing the exam for clicks")
                session = factory(flair, t1c)
            return generation, session, len(clicks), session.update(fg, bg, cancel=cancel)

        self._busy = True
        self._update_buttons()
        self.status.value = f"Updating the mask ({len(fg)} tumour, {len(bg)} not-tumour clicks)..."
        self.worker = run_task(work, on_done=self._done, on_progress=lambda d, t, s: None,
                               on_error=self._error, synchronous=self.synchronous)

    def _default_factory(self, flair: Volume, t1c: Volume) -> Any:
        from ...core.tasks.click_segment import ClickSegmenter

        return ClickSegmenter(flair, t1c, model=self.model, device=self.device)

    def _done(self, result: tuple[int, Any, int, Volume]) -> None:
        generation, session, count, mask = result
        self._busy = False
        if generation != self._generation:  # the exam changed meanwhile
            self._update_buttons()
            return
        self._session = session
        self.provenance = dict(mask.meta.get("provenance") or {"model_id": str(self.model)})
        if count <= len(self._clicks):
            self._set_mask(np.asarray(volume_to_layer_data(mask, "labels")[0]))
            self._undo.append((count, self._pack()))
            del self._undo[:-MAX_HISTORY]
            voxels = int(np.count_nonzero(self.mask.data))
            self.status.value = f"Mask updated: {voxels} voxels from {count} clicks."
        if len(self._clicks) > (self._undo[-1][0] if self._undo else 0):
            self._start_update()  # queued clicks: one update with all of them
        self._update_buttons()

    def _error(self, exc: BaseException) -> None:
        self._busy = False
        done = self._undo[-1][0] if self._undo else 0
        del self._clicks[done:]  # the failed clicks are dropped, with their points
        self._show_points()
        text = "Cancelled." if is_cancelled(exc) else f"The click could not be used: {exc}"
        if not is_cancelled(exc):
            show_error(text)
        self.status.value = text
        self._update_buttons()

    # -- mask and history -------------------------------------------------------------------
    def _set_mask(self, data: np.ndarray) -> None:
        layer = self.mask
        if layer is None:
            ref = self._flair_layer
            meta = {GEOMETRY: dict(ref.metadata.get(GEOMETRY, {})), TUMOR_KIND: "whole",
                    "provenance": self.provenance}
            layer = self._viewer.add_labels(np.zeros(ref.data.shape, np.uint8), name=MASK_LAYER,
                                            scale=ref.scale, translate=ref.translate, metadata=meta,
                                            opacity=0.5, features={"index": [0, 1],
                                                                   "name": ["background", "whole tumour"]})
            self._viewer.layers.selection.active = self.points
            hidden = [x.name for x in self._viewer.layers
                      if x.metadata.get(TUMOR_KIND) == "brats" and x.visible]
            for name in hidden:  # one outline at a time: the automatic labels under it muddy the colours
                self._viewer.layers[name].visible = False
            if hidden:
                show_info(f"Hid {', '.join(hidden)} under the click mask; tick it in the layer list "
                          "to compare.")
        layer.data[...] = data  # in place: the same layer and array
        layer.metadata["provenance"] = self.provenance
        layer.refresh()
        if self._on_mask is not None:
            self._on_mask(layer, self.provenance)

    def _pack(self) -> bytes:
        return np.packbits(np.asarray(self.mask.data) > 0).tobytes()

    def _unpack(self, packed: bytes) -> np.ndarray:
        shape = self.mask.data.shape
        bits = np.unpackbits(np.frombuffer(packed, np.uint8), count=int(np.prod(shape)))
        return bits.reshape(shape).astype(np.uint8)

    def undo(self, *_: Any) -> None:
        """Remove the last update's clicks and restore the mask before them."""
        if self._busy or not self._undo:
            return
        count, packed = self._undo.pop()
        before = self._undo[-1][0] if self._undo else 0
        self._redo.append((self._clicks[before:count], packed))
        del self._clicks[before:]
        self._set_mask(self._unpack(self._undo[-1][1]) if self._undo else np.zeros_like(self.mask.data))
        self._show_points()
        self.status.value = f"Undone; {len(self._clicks)} clicks."
        self._update_buttons()

    def redo(self, *_: Any) -> None:
        """Put back the clicks and mask of the last Undo."""
        if self._busy or not self._redo:
            return
        clicks, packed = self._redo.pop()
        self._clicks.extend(clicks)
        self._undo.append((len(self._clicks), packed))
        self._set_mask(self._unpack(packed))
        self._show_points()
        self.status.value = f"Redone; {len(self._clicks)} clicks."
        self._update_buttons()

    def clear(self, *_: Any) -> None:
        """Remove every click and empty the mask (the session is kept)."""
        if self._busy:
            return
        self._clicks, self._undo, self._redo = [], [], []
        if self.mask is not None:
            self._set_mask(np.zeros_like(self.mask.data))
        if POINTS_LAYER in self._viewer.layers:
            self._show_points()
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.undo_button.enabled = bool(self._undo) and not self._busy
        self.redo_button.enabled = bool(self._redo) and not self._busy
        self.clear_button.enabled = bool(self._clicks) and not self._busy
