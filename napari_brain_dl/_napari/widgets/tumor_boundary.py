"""Refine a tumour labels layer: tighter / looser per region, clicks, scribbles, box, lasso; one history.

The panel edits the followed tumour layer (the automatic "tumor" result, whose region
probabilities `remember` keeps), or a "tumor (edited)" labels layer started from nothing
("Start from nothing", or no result yet) or from a whole-tumour mask, through
`core.tasks.tumor_edit.TumourEditor`:

- Tighter / Looser per region (WT, TC, ET) re-threshold the stored probabilities: no network.
- Tool "click": left click adds a positive click, right or Shift + left click a negative one,
  through the click model; the clicks show as green / magenta points ("tumor clicks").
- Tools draw on the "tumor prompts" Shapes layer: a path is a scribble (Remove ticked: a
  negative one), a rectangle a box, a polygon a lasso.
- napari's own paint / fill / erase on the layer become steps of the same history, so Undo /
  Redo here step back through every kind of interaction, clicks and their points included.

Model work (clicks, whole-tumour strokes, boxes) runs off the UI thread. Clicks made while
one runs are queued (shown at once, applied in order, one history step each); any other
prompt made meanwhile is refused with a sentence (nothing lost). Bad prompts (outside the
scan, a lasso of fewer than three points, a box of zero size) give one sentence in the status
line and change nothing.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from typing import Any

import napari.viewer
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, PushButton
from napari.utils.notifications import show_info

from ...core.volume import Volume
from ..layers import GEOMETRY, layer_volume, same_layer, volume_to_layer_data
from . import is_cancelled, run_task
from .task_panel import wrapping
from .tumor_clicks import TUMOR_KIND, ClickMarkers, Voxel, display_to_index, display_to_voxel
from .tumor_style import tumor_layer_kwargs

PROMPTS_LAYER = "tumor prompts"
EDIT_LAYER = "tumor (edited)"
REGIONS = (("WT", "whole tumour"), ("TC", "tumour core"), ("ET", "enhancing"))
TOOLS = ("off", "click", "scribble", "box", "lasso")
_MODES = {"scribble": "add_path", "box": "add_rectangle", "lasso": "add_polygon"}
#: The automatic results' probabilities, kept as long as their layer lives (napari hands plugins
#: proxies of layers: the key is the layer itself).
_PROBABILITIES: weakref.WeakKeyDictionary[Any, tuple[np.ndarray, dict[str, float]]] = \
    weakref.WeakKeyDictionary()


def _unwrapped(layer: napari.layers.Layer) -> Any:
    return getattr(layer, "__wrapped__", layer)


def remember(layer: napari.layers.Layer, probabilities: np.ndarray | None,
             thresholds: dict[str, float] | None) -> None:
    """Keep the automatic result's probabilities for `layer` (used when the panel edits it)."""
    if probabilities is not None:
        _PROBABILITIES[_unwrapped(layer)] = (probabilities, dict(thresholds or {}))


class TumourEditPanel(Container):
    """Boundary buttons, prompt tools, Undo / Redo and a status line.

    `exam` returns ``(flair_layer, flair, t1c, t1c_input)`` (Volumes on their source grids; t1c is
    what the click model gets as T1c, named by `t1c_input`: T1c, or T1 standing in; it may be None:
    clicks and model-aided strokes then say they need it) or raises ValueError with a sentence;
    `target` returns the tumour labels layer to edit, or None (start from nothing).
    Tests may set ``synchronous`` and ``segmenter_factory(flair, t1c)``.
    """

    def __init__(
        self,
        viewer: napari.viewer.Viewer,
        exam: Callable[[], tuple[Any, Volume, Volume | None, str]],
        target: Callable[[], Any],
        on_change: Callable[[Any, dict[str, Any] | None], None] | None = None,
    ) -> None:
        super().__init__(labels=False, layout="vertical")
        self._viewer, self._exam, self._target, self._on_change = viewer, exam, target, on_change
        self.synchronous = False
        self.device = "auto"
        self.segmenter_factory: Callable[[Volume, Volume], Any] | None = None
        self.editor: Any = None
        self._plan: Callable[[Volume | None], Any] | None = None  # builds the editor (in a worker)
        self.layer: napari.layers.Layer = None
        self._flair: Volume | None = None
        self._flair_layer: napari.layers.Layer = None
        self._busy = False
        self._painting = False
        self._copied: Any = None  # (layer id, mask bits) of the click mask an edited copy started from
        self._queue: list[tuple[Voxel, bool]] = []  # clicks made while an edit ran, applied next
        self._running: tuple[Voxel, bool] | None = None  # the click the model is working on
        self._fresh = False  # "Start from nothing": ignore the followed layer while it stays this one
        self._fresh_from: Any = None
        self.markers = ClickMarkers(viewer)
        rows = []
        for region, name in REGIONS:
            tighter = PushButton(
                text=f"{region} tighter", tooltip=f"Move the {name} outline in by about a voxel"
            )
            looser = PushButton(
                text=f"{region} looser", tooltip=f"Move the {name} outline out by about a voxel"
            )
            tighter.changed.connect(lambda *_, r=region: self.boundary(r, -1))
            looser.changed.connect(lambda *_, r=region: self.boundary(r, +1))
            rows.append(Container(layout="horizontal", labels=False, widgets=[tighter, looser]))
        tool_names = [(f"Tool: {'none' if t == 'off' else t}", t) for t in TOOLS]
        self.tool = ComboBox(label="Tool", choices=tool_names, value="off",
                             tooltip="Draw on the 'tumor prompts' layer: a path is a scribble, "
                                     "a rectangle a box, a polygon a lasso; click adds clicks")
        self.region = ComboBox(label="Region", choices=[(f"{r}: {n}", r) for r, n in REGIONS], value="WT",
                               tooltip="The region a scribble, box or lasso edits")
        self.remove = CheckBox(text="Remove", value=False,
                               tooltip="Ticked: scribbles, boxes and lassos remove from the region")
        self.undo_button = PushButton(text="Undo", enabled=False, tooltip="Undo the last edit of any kind")
        self.redo_button = PushButton(text="Redo", enabled=False)
        self.fresh_button = PushButton(text="Start from nothing",
                                       tooltip="Edit a new, empty tumour layer; the current result stays")
        self.status = wrapping(Label(value="Refine the tumour: boundary buttons or a tool."))
        # the region box gets a row of its own, so its names are never cut
        tools = Container(layout="horizontal", labels=False, widgets=[self.tool, self.remove])
        history = Container(layout="horizontal", labels=False,
                            widgets=[self.undo_button, self.redo_button, self.fresh_button])
        self.extend([*rows, tools, self.region, history, self.status])
        self.tool.changed.connect(self._tool_changed)
        self.undo_button.changed.connect(self.undo)
        self.redo_button.changed.connect(self.redo)
        self.fresh_button.changed.connect(self.start_from_nothing)

    # -- session ----------------------------------------------------------------------------------
    def _ensure(self) -> bool:
        """Check the exam and the tumour layer; False with a sentence.

        When they changed, the old editor goes and a new one is planned: `_run` builds it in its
        worker from the layer's labels as they are then (about 0.6 s for a 240^3 exam).
        """
        try:
            flair_layer, flair, t1c, t1c_input = self._exam()
        except ValueError as exc:
            self.status.value = str(exc)
            return False
        target = self._followed()
        start = None
        if target is not None and target.metadata.get(TUMOR_KIND) != "brats":
            # a whole-tumour click mask: an edited BraTS copy starts from it (label 2 = whole tumour)
            start = np.where(np.asarray(layer_volume(target).data) > 0, 2, 0).astype(np.uint8)
            key = (id(target), np.packbits(start > 0).tobytes())
            if self._session_open() and key == self._copied and same_layer(flair_layer, self._flair_layer):
                return True  # still editing the copy of this mask
            self._copied, target = key, None
            self.editor, self._plan = None, None
        if (
            self._session_open()
            and same_layer(flair_layer, self._flair_layer)
            and (target is None or same_layer(target, self.layer))
        ):
            return True
        factory = self.segmenter_factory
        segmenter = (lambda: factory(flair, t1c)) if factory and t1c is not None else None
        prob, thresholds = (None, {})
        if target is not None:
            prob, thresholds = _PROBABILITIES.get(_unwrapped(target), (None, {}))
            self.layer = target
        else:
            self.layer = self._new_layer(flair_layer)
            if start is not None:
                self.layer.data[...] = np.asarray(volume_to_layer_data(flair.with_data(start), "labels")[0])
        device = self.device

        def plan(labels: Volume | None) -> Any:
            from ...core.tasks.tumor_edit import TumourEditor

            return TumourEditor(flair, t1c, labels=labels, probabilities=prob, thresholds=thresholds or None,
                                segmenter=segmenter, device=device, t1c_input=t1c_input)

        self.editor, self._plan, self._flair, self._flair_layer = None, plan, flair, flair_layer
        self.layer.events.paint.connect(self._painted)
        return True

    def _followed(self) -> Any:
        """The tumour layer to edit: the target, or None (start from nothing) after "Start from nothing"
        until the target changes (to the new layer once its first edit is followed, or a new result)."""
        target = self._target()
        if self._fresh and (target is None or same_layer(target, self._fresh_from)):
            return None
        self._fresh = False
        return target

    def _session_open(self) -> bool:
        return self.editor is not None or self._plan is not None

    def start_from_nothing(self, *_: Any) -> None:
        """Edit a new, empty "tumor (edited)" layer; the followed result stays as it is, hidden."""
        if self._busy:
            self.status.value = "Busy with the previous edit; try again in a moment."
            return
        self.reset()
        self._fresh, self._fresh_from = True, self._target()
        if not self._ensure():
            self._fresh = False
            return
        hidden = [x.name for x in self._viewer.layers
                  if x.metadata.get(TUMOR_KIND) and x.visible and not same_layer(x, self.layer)]
        for name in hidden:  # one outline at a time: the result under it muddies the colours
            self._viewer.layers[name].visible = False
        if hidden:
            show_info(f"Hid {', '.join(hidden)}; tick it in the layer list to compare.")
        self.status.value = "Starting from nothing: click inside the tumour (Tool: click) or draw a lasso."

    def _new_layer(self, ref: Any) -> Any:
        meta = {
            GEOMETRY: dict(ref.metadata.get(GEOMETRY, {})),
            TUMOR_KIND: "brats",
            "provenance": {"task": "tumour editing", "started_from": "nothing"},
        }
        return self._viewer.add_labels(
            np.zeros(ref.data.shape, np.uint8),
            name=EDIT_LAYER,
            scale=ref.scale,
            translate=ref.translate,
            metadata=meta,
            **tumor_layer_kwargs(),  # the result's class colours and names
        )

    def reset(self) -> None:
        """Forget the editor (another exam or tumour layer)."""
        if self.layer is not None:
            with contextlib.suppress(TypeError, ValueError, RuntimeError):
                self.layer.events.paint.disconnect(self._painted)
        self.editor, self._plan, self.layer, self._flair, self._flair_layer = None, None, None, None, None
        self._copied, self._queue, self._running, self._fresh = None, [], None, False
        self.markers.clear()
        self._update_buttons()

    # -- interactions -----------------------------------------------------------------------------
    def boundary(self, region: str, steps: int) -> None:
        """One step tighter (-1) or looser (+1) for a region: instant, no network pass."""
        self._run(lambda ed: ed.boundary(region, steps), f"{region} {'looser' if steps > 0 else 'tighter'}")

    def click(self, data_point: Any, positive: bool) -> bool:
        """A click at a FLAIR layer data point; False (and a sentence) when outside the scan.

        While an edit runs the click is queued: shown at once, applied when its turn comes.
        """
        if not self._busy and not self._ensure():
            return False
        voxel = display_to_voxel(self._flair_layer, data_point)
        if voxel is None:
            self.status.value = "That click is outside the scan; click on the image."
            return False
        if self._busy:
            self._queue.append((voxel, positive))
            self._show_clicks()
            self.status.value = f"Busy: the click is queued ({len(self._queue)} waiting)."
            return True
        self._apply_click(voxel, positive)
        return True

    def _apply_click(self, voxel: Voxel, positive: bool) -> None:
        self._run(lambda ed: ed.click(voxel, positive), f"{'positive' if positive else 'negative'} click")
        if self._busy:  # it runs in a worker: show its point meanwhile
            self._running = (voxel, positive)
            self._show_clicks()

    def _next_queued(self) -> None:
        """Apply the oldest queued click, if any (called when an edit has finished)."""
        if self._queue and not self._busy:
            self._apply_click(*self._queue.pop(0))

    def _show_clicks(self) -> None:
        """The editor's clicks (its history restores them) and the queued ones, as points."""
        if self._flair_layer is not None:
            done = list(self.editor.clicks) if self.editor is not None else []
            running = [self._running] if self._running is not None else []
            self.markers.show(self._flair_layer, [*done, *running, *self._queue])

    def apply_shape(self, kind: str, data_points: Any) -> bool:
        """A scribble (path), box (rectangle corners) or lasso (polygon) in FLAIR layer data points."""
        if not self._ensure():
            return False
        from ...core.tasks.tumor_prompts import parse_prompt

        pts = [display_to_index(self._flair_layer, p) for p in np.asarray(data_points, float).reshape(-1, 3)]
        if kind == "box" and len(pts) >= 2:  # a rectangle's four corners: two opposite ones
            arr = np.asarray(pts)
            pts = [arr.min(0).tolist(), arr.max(0).tolist()]
        item = {
            "kind": kind,
            "sign": not bool(self.remove.value),
            "points": pts,
            "region": self.region.value,
            "radius_mm": 1.0,
        }
        try:
            prompt = parse_prompt(item, self._flair.shape, self._flair.affine)
        except ValueError as exc:
            self.status.value = str(exc)
            return False
        self._run(lambda ed: ed.prompt(prompt), f"{kind} ({prompt.region})")
        return True

    def undo(self, *_: Any) -> None:
        """Undo the last edit (boundary, prompt or paint)."""
        if self.editor is not None and self.editor.can_undo:
            self._run(lambda ed: {"done": ed.undo()}, "Undo", "Undone.")

    def redo(self, *_: Any) -> None:
        """Redo the last undone edit."""
        if self.editor is not None and self.editor.can_redo:
            self._run(lambda ed: {"done": ed.redo()}, "Redo", "Redone.")

    def _painted(self, *_: Any) -> None:
        """napari paint / fill / erase on the edited layer: one step of the shared history.

        Before the editor exists the paint simply stays in the layer, which the editor starts from.
        """
        if self._painting or self.editor is None or self._busy:
            return
        labels = np.asarray(layer_volume(self.layer).data)
        try:
            self.editor.apply_labels(labels, "paint")
        except ValueError as exc:  # a label outside 0-3 painted: put the last good map back
            self.status.value = str(exc)
        edited = self.editor.volume()
        self._show("Painted." if self.editor.can_undo else "", edited,
                   np.asarray(volume_to_layer_data(edited, "labels")[0]))

    def _run(self, action: Callable[[Any], Any], what: str, said: str | None = None) -> None:
        """Run `action(editor)` in a worker (building the editor first when planned), then show the
        labels and their measurements, both prepared there too: the UI thread only copies them in."""
        if self._busy:
            self.status.value = "Busy with the previous edit; try again in a moment."
            return
        if not self._ensure():
            return
        editor, plan = self.editor, self._plan
        start = None
        if editor is None:  # the layer as it is now (napari paint included) is where the editor starts
            start = layer_volume(self.layer)  # a Volume: the editor checks its grid against FLAIR's
            start = start if np.asarray(start.data).any() else None
        self._busy = True
        self._update_buttons()
        self.status.value = f"{what}..."

        def work(progress: Any, cancel: Any, notify: Any) -> Any:
            from .tumor_results import layer_measurements

            ed = editor if editor is not None else plan(start)
            entry = action(ed)
            edited = ed.volume()
            data = np.asarray(volume_to_layer_data(edited, "labels")[0])
            return ed, entry, edited, data, layer_measurements(edited, "brats")

        def done(result: tuple[Any, dict[str, Any], Volume, np.ndarray, dict[str, Any]]) -> None:
            self._busy, self._running = False, None
            ed, entry, edited, data, measurements = result
            if editor is None and plan is self._plan:
                self.editor, self._plan = ed, None
            if ed is not self.editor:  # the exam changed meanwhile
                self._update_buttons()
                return
            if said is not None:
                text = said
            elif "changed" in entry:
                text = f"{what}: {entry.get('changed', 'outline moved')} voxels changed."
                text += f" {entry['note']}" if "note" in entry else ""
            else:
                text = f"{what} done."
            self._show(text, edited, data, measurements)
            self._next_queued()

        def error(exc: BaseException) -> None:
            self._busy, self._running = False, None
            dropped, self._queue = len(self._queue), []  # they were aimed at a result that did not come
            text = "Cancelled." if is_cancelled(exc) else str(exc)
            self.status.value = text + (f" {dropped} queued clicks dropped." if dropped else "")
            self._show_clicks()
            self._update_buttons()

        run_task(
            work, on_done=done, on_progress=lambda d, t, s: None, on_error=error, synchronous=self.synchronous
        )

    def _show(self, text: str, edited: Volume, data: np.ndarray,
              measurements: dict[str, Any] | None = None) -> None:
        """Put the edited labels (`data`: layer order) into the layer in place and say what happened."""
        self._painting = True
        try:
            self.layer.data[...] = data
            self.layer.metadata["provenance"] = {
                **self.layer.metadata.get("provenance", {}),
                "edits": edited.meta["provenance"],
            }
            self.layer.refresh()
        finally:
            self._painting = False
        if self._on_change is not None:
            self._on_change(self.layer, measurements)
        if text:
            wt = int((self.editor.labels > 0).sum())
            self.status.value = f"{text} Whole tumour {wt * self.editor.flair.voxel_volume_ml:.1f} mL."
        self._show_clicks()
        self._update_buttons()

    # -- tools ------------------------------------------------------------------------------------
    @property
    def shapes(self) -> Any:
        """The "tumor prompts" Shapes layer (created on first use)."""
        if PROMPTS_LAYER not in self._viewer.layers:
            ref = self._flair_layer
            layer = self._viewer.add_shapes(
                ndim=3,
                name=PROMPTS_LAYER,
                scale=ref.scale,
                translate=ref.translate,
                edge_width=1,
                edge_color="yellow",
                face_color=[0, 0, 0, 0],
            )
            layer.events.data.connect(self._shape_added)
        return self._viewer.layers[PROMPTS_LAYER]

    def _tool_changed(self, tool: str) -> None:
        callbacks = self._viewer.mouse_drag_callbacks
        if self._on_mouse in callbacks:
            callbacks.remove(self._on_mouse)
        if tool == "off":
            return
        if not self._ensure():
            self.tool.value = "off"
            return
        if tool == "click":
            callbacks.append(self._on_mouse)
            self._viewer.layers.selection.active = self.markers.layer(self._flair_layer)  # not a paint tool
            self.status.value = "Click on the tumour (left) or outside it (right / Shift+left)."
            return
        shapes = self.shapes
        shapes.mode = _MODES[tool]
        self._viewer.layers.selection.active = shapes
        self.status.value = {
            "scribble": "Draw a stroke across the part to add (or, with Remove, to remove).",
            "box": "Drag a box around the tumour on one slice.",
            "lasso": "Click the outline of the region on one slice; double-click to close.",
        }[tool]

    def _shape_added(self, event: Any) -> None:
        if getattr(event, "action", "added") not in ("added", None) or not len(self.shapes.data):
            return
        kind = {"path": "scribble", "rectangle": "box", "polygon": "lasso"}.get(self.shapes.shape_type[-1])
        points = np.asarray(self.shapes.data[-1])
        self.shapes.events.data.disconnect(self._shape_added)
        try:
            self.shapes.data = []  # the prompt is applied; the drawing goes
        finally:
            self.shapes.events.data.connect(self._shape_added)
        if kind is not None:
            self.apply_shape(kind, points)

    def _on_mouse(self, viewer: napari.viewer.Viewer, event: Any) -> Any:
        """Viewer mouse callback (click tool): a click, not a drag, edits the tumour."""
        start = np.asarray(getattr(event, "pos", (0, 0)), float)
        yield
        while event.type == "mouse_move":
            if np.abs(np.asarray(getattr(event, "pos", start), float) - start).max() > 3:
                return
            yield
        if event.button not in (1, 2) or self._flair_layer is None:
            return
        positive = event.button == 1 and "Shift" not in {str(m) for m in event.modifiers}
        self.click(self._flair_layer.world_to_data(event.position), positive)

    def _update_buttons(self) -> None:
        ed = self.editor
        self.undo_button.enabled = bool(ed is not None and ed.can_undo and not self._busy)
        self.redo_button.enabled = bool(ed is not None and ed.can_redo and not self._busy)
        self.fresh_button.enabled = not self._busy
