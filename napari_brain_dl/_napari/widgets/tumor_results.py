"""Results part of the "Segment tumour" widget: measurements, autosave, Save JSON, export.

One tumour labels layer is followed at a time (the last one produced or edited). After
every edit (napari's paint / fill / erase, undo / redo, a click update) a QTimer waits
`DEBOUNCE_MS` and then a worker writes the labels atomically into the user data folder,
keyed by the exam (beside the exam only when "Autosave beside the exam" is ticked and
that folder is writable; see `autosave.py`), and measures them; the table and the RANO
diameter lines follow on the UI thread. `flush()` does the same at once, on the calling thread.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import napari.viewer
import numpy as np
from magicgui.widgets import CheckBox, Container, Label, PushButton, Table
from napari.utils.notifications import show_error, show_info

from ...core.report import lesion_summary
from ...core.tasks.tumor import CLASS_NAMES
from ..autosave import SUFFIX, autosave_path, exam_stem, existing_autosave, source_meta
from ..layers import layer_volume, same_layer, volume_to_layer_data
from . import run_task
from .tumor_clicks import TUMOR_KIND, voxel_to_display
from .tumor_style import DEFAULT_COLORS, legend_html, tumor_layer_kwargs

__all__ = ["DEFAULT_COLORS", "TumorResults", "legend_html", "touch", "tumor_layer_kwargs"]

DEBOUNCE_MS = 1500
#: Layer metadata key: when the reader last produced or edited these tumour labels (time.time()).
TOUCHED = "brain_dl_touched"
RANO_LAYER = "RANO diameters"
ROWS = (("necrotic core 1 (mL)", "necrotic_core_ml"), ("edema 2 (mL)", "edema_ml"),
        ("enhancing 3 (mL)", "enhancing_ml"), ("whole 1+2+3 (mL)", "whole_tumor_ml"),
        ("core 1+3 (mL)", "tumor_core_ml"),
        ("lesions >= {min} mm", "measurable_lesions"),  # RANO measurable: both diameters
        ("smaller foci", "smaller_foci"),
        ("RANO longest (mm)", "longest_mm"), ("RANO perp. (mm)", "perpendicular_mm"),
        ("sum of products (mm²)", "sum_of_products_mm2"))


def _save_autosave(volume: Any, path: Path) -> None:
    from ...core import io

    path.parent.mkdir(parents=True, exist_ok=True)
    io.save(volume, path, overwrite=True, description="napari-brain-dl tumour autosave")


def _write_autosave(volume: Any, paths: list[Path]) -> Path:
    """Write to the first of `paths` that takes it (beside the exam, then the user data folder);
    OSError when none does. Touches no widget: runs in a worker."""
    for path in paths[:-1]:
        try:
            _save_autosave(volume, path)
            return path
        except OSError:
            continue
    _save_autosave(volume, paths[-1])
    return paths[-1]


def _ask_path(caption: str, default: str, filter: str) -> str | None:
    """Save dialog (overwrite is asked separately); None when cancelled."""
    from qtpy.QtWidgets import QFileDialog

    path, _ = QFileDialog.getSaveFileName(None, caption, default, filter,
                                          options=QFileDialog.Option.DontConfirmOverwrite)
    return path or None


def _ask(question: str) -> bool:
    """Yes/No dialog; True on Yes."""
    from qtpy.QtWidgets import QMessageBox

    yes, no = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No
    return QMessageBox.question(None, "Replace the file?", question, yes | no, no) == yes


class TumorResults(Container):
    """Measurements table, autosave / restore, Save JSON and exports of one tumour layer.

    `reference()` returns the FLAIR layer (or None). Tests may replace ``ask_path``
    ((caption, default, filter) -> path or None) and ``confirm`` (question -> bool),
    and call ``flush()`` instead of waiting for the timer.
    """

    def __init__(self, viewer: napari.viewer.Viewer, reference: Callable[[], Any]) -> None:
        from qtpy.QtCore import QTimer
        from qtpy.QtWidgets import QHeaderView, QStyledItemDelegate

        super().__init__(labels=False)
        self._viewer, self._reference = viewer, reference
        self.ask_path: Callable[[str, str, str], str | None] = _ask_path
        self.confirm: Callable[[str], bool] = _ask
        self.layer: napari.layers.Layer = None
        self.kind = "brats"
        self.provenance: dict[str, Any] = {}
        self.measurements: dict[str, Any] = {}
        self.edited = False
        self._dirty = False
        self._measured = True  # the table shows the followed labels as they are now
        self._history = (0, 0)
        self._told_fallback = False
        self._flushing = False  # a worker is autosaving and measuring
        self.synchronous = False  # tests: the timer's autosave and measurements run inline
        self._adding = False  # a widget is adding a tumour layer and attaches it itself
        self.table = Table(value={"data": [["-"] for _ in ROWS], "index": _index(10.0),
                                  "columns": ["value"]})
        self.table.read_only = True
        self.table.native.setItemDelegate(QStyledItemDelegate(self.table.native))  # our own number format
        self.table.native.setMinimumHeight(290)
        header = self.table.native.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)  # the values always in view
        header.setVisible(False)  # one column: its title says nothing
        self.restore_button = PushButton(text="Restore autosave", enabled=False)
        self.json_button = PushButton(text="Save JSON", enabled=False)
        self.nifti_button = PushButton(text="Export NIfTI", enabled=False)
        self.seg_button = PushButton(text="Export DICOM SEG", enabled=False)
        self.beside = CheckBox(text="Autosave beside the exam", value=False,
                               tooltip="Else in your user data folder, one folder per exam")
        self.status = Label(value="")
        self.legend = Label(value=legend_html("brats"))
        rows = [Container(layout="horizontal", labels=False, widgets=pair) for pair in
                ([self.json_button, self.restore_button], [self.nifti_button, self.seg_button])]
        self.extend([self.legend, self.table, *rows, self.beside, self.status])
        self.restore_button.changed.connect(self.restore)
        self.json_button.changed.connect(lambda *_: self.save_json())
        self.nifti_button.changed.connect(lambda *_: self.export_nifti())
        self.seg_button.changed.connect(lambda *_: self.export_dicom_seg())
        self._timer = QTimer(self.native)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self._flush_in_worker)
        viewer.layers.events.removed.connect(self._removed)
        viewer.layers.selection.events.active.connect(self._selected)

    # -- following a layer ----------------------------------------------------------------
    def attach(self, layer: napari.layers.Layer, provenance: dict[str, Any] | None = None,
               kind: str = "brats", edited: bool = False,
               measurements: dict[str, Any] | None = None) -> None:
        """Follow `layer` (measure it now; autosave it after each edit).

        `measurements`: `tumor_measurements` of exactly this layer's labels, computed off the
        UI thread by the caller (a fresh result); None measures here.
        """
        if not same_layer(layer, self.layer):
            self._detach()
            self.layer, self.kind = layer, kind
            self.edited = edited or bool(layer.metadata.get("brain_dl_edited"))
            self.provenance = dict(layer.metadata.get("provenance", {}))
            for event in (layer.events.paint, layer.events.data):
                event.connect(self.edit)
            layer.events.set_data.connect(self._maybe_undo)
            self._history = (len(layer._undo_history), len(layer._redo_history))
        if provenance is not None:
            self.provenance = dict(provenance)
        self.legend.value = legend_html(self.kind, layer)
        touch(layer)
        self.measure(measurements)
        self.update_buttons()

    @contextmanager
    def adding(self) -> Iterator[None]:
        """While a widget adds a tumour layer it attaches itself (napari selects a new layer)."""
        self._adding = True
        try:
            yield
        finally:
            self._adding = False

    def _selected(self, event: Any) -> None:
        """Selecting a tumour layer (e.g. to paint it) makes it the followed one."""
        layer = event.value
        if self._adding:
            return
        kind = layer.metadata.get(TUMOR_KIND) if layer is not None else None
        if kind in SUFFIX and not same_layer(layer, self.layer):
            self.flush()  # the previous layer's pending autosave first
            self.attach(layer, kind=kind)

    def _detach(self) -> None:
        if self.layer is not None:
            for event in (self.layer.events.paint, self.layer.events.data):
                event.disconnect(self.edit)
            self.layer.events.set_data.disconnect(self._maybe_undo)
        self.layer = None

    def _removed(self, event: Any) -> None:
        if self.layer is not None and same_layer(event.value, self.layer):
            self._timer.stop()
            self._detach()
            self.update_buttons()

    def _maybe_undo(self, *_: Any) -> None:
        """set_data also fires on slicing; only napari's undo / redo (history moved) is an edit."""
        history = (len(self.layer._undo_history), len(self.layer._redo_history))
        if history != self._history:
            self.edit()

    def edit(self, *_: Any, measured: bool = False) -> None:
        """The labels changed: autosave and measure after `DEBOUNCE_MS` of quiet (`measured`: the
        caller already put these labels' measurements in, so only the autosave is due)."""
        if self.layer is None:
            return
        self._history = (len(self.layer._undo_history), len(self.layer._redo_history))
        self.edited, self._dirty = True, True
        self._measured = measured and self._measured
        self.layer.metadata["brain_dl_edited"] = True
        touch(self.layer)
        self._timer.start()

    def flush(self) -> None:
        """Autosave and measure now, on this thread (the timer does it in a worker)."""
        self._timer.stop()
        if self.layer is None or not self._dirty:
            return
        self._dirty = False
        self.autosave()
        if not self._measured:
            self.measure()

    def _flush_in_worker(self) -> None:
        """What the timer does: write the autosave and measure in a worker (a 240^3 exam takes
        0.3-1 s), then show both; one at a time, a later edit waits for the next quiet time."""
        if self.layer is None or not self._dirty:
            return
        if self._flushing:
            self._timer.start()
            return
        plan = self._autosave_plan()
        self._dirty, self._flushing = False, True
        layer, kind, measure = self.layer, self.kind, not self._measured
        volume = plan[0] if plan is not None else self.labels_volume()

        def work(progress: Any, cancel: Any, notify: Any) -> tuple[Path | None, dict[str, Any] | None]:
            path = _write_autosave(volume, plan[1]) if plan is not None else None
            return path, layer_measurements(volume, kind) if measure else None

        def done(result: tuple[Path | None, dict[str, Any] | None]) -> None:
            self._flushing = False
            path, measurements = result
            if path is not None:
                self._autosaved(path, plan[1])
            if measurements is not None and same_layer(layer, self.layer) and not self._dirty:
                self.measure(measurements)  # else newer edits measure again

        def error(exc: BaseException) -> None:
            self._flushing = False
            show_error(f"The autosave could not be written: {exc}")

        run_task(work, on_done=done, on_progress=lambda *_: None, on_error=error,
                 synchronous=self.synchronous)

    def labels_volume(self) -> Any:
        """The followed layer as a core Volume on the scan's own grid."""
        return layer_volume(self.layer)

    # -- autosave ---------------------------------------------------------------------------
    def autosave(self) -> Path | None:
        """Write the followed labels atomically into the user data folder (beside the exam when
        chosen and writable, the user folder as a fallback)."""
        plan = self._autosave_plan()
        if plan is None:
            return None
        try:
            path = _write_autosave(*plan)
        except OSError as exc:
            show_error(f"The autosave could not be written: {exc}")
            return None
        self._autosaved(path, plan[1])
        return path

    def _autosave_plan(self) -> tuple[Any, list[Path]] | None:
        """The labels to write and where to try, in order; None without a layer or FLAIR."""
        flair = self._reference()
        if self.layer is None or flair is None:
            return None
        path, beside = autosave_path(flair, self.kind, self.beside.value)
        paths = [path, autosave_path(flair, self.kind)[0]] if beside else [path]
        return self.labels_volume(), paths

    def _autosaved(self, path: Path, tried: list[Path]) -> None:
        """Say where the autosave went (once, when it could not go beside the exam as chosen)."""
        beside = len(tried) > 1 and path == tried[0]
        if self.beside.value and not beside and not self._told_fallback:
            self._told_fallback = True
            show_info(f"The exam's folder is unknown or not writable: edits are autosaved in {path.parent}.")
        self.status.value = f"Autosaved {path.name} at {datetime.datetime.now():%H:%M:%S}."
        self.update_buttons()

    def restore(self, *_: Any) -> Any:
        """Load the autosave of the current FLAIR back as a tumour layer; None when there is none."""
        from napari.layers import Layer

        from ...core import io

        flair = self._reference()
        path = existing_autosave(flair)
        if flair is None or path is None:
            self.status.value = "There is no autosave for this exam."
            return None
        try:
            saved = io.load(path)
        except (OSError, ValueError) as exc:
            show_error(f"The autosave could not be read: {exc}")
            return None
        reference = layer_volume(flair)
        if not saved.same_grid(reference, atol=1e-3):
            show_error(f"{path.name} is not on the FLAIR grid of this exam; it was not restored.")
            return None
        saved = saved.with_data(np.asarray(saved.data), name="tumor (autosave)")
        meta = {TUMOR_KIND: "brats", "brain_dl_edited": True, "provenance": {"restored_from": str(path)}}
        data, kwargs, kind = volume_to_layer_data(saved, "labels", metadata=meta, **tumor_layer_kwargs())
        layer = self._viewer.add_layer(Layer.create(data, kwargs, kind))
        self.attach(layer, meta["provenance"], edited=True)
        self.status.value = f"Restored {path.name}."
        return layer

    # -- measurements -------------------------------------------------------------------------
    def measure(self, measurements: dict[str, Any] | None = None) -> dict[str, Any]:
        """Recompute the table (and RANO lines) from the followed layer.

        `measurements`: the followed layer's own `tumor_measurements`, already computed off the
        UI thread; None computes them here.
        """
        if self.layer is None:
            return {}
        if measurements is not None:
            m = dict(measurements)
        else:
            m = layer_measurements(self.labels_volume(), self.kind)
        self.measurements, self._measured = m, True
        lesion = (m.get("lesions") or [{}])[0]
        values = {**m, **{k: lesion.get(k) for k in ("longest_mm", "perpendicular_mm")}}
        if "measurable_lesions" in m:
            values["smaller_foci"] = len(m["lesions"]) - int(m["measurable_lesions"])
        minimum = float(m.get("method", {}).get("min_diameter_mm", 10.0))
        self.table.value = {"data": [[_fmt(values.get(key))] for _, key in ROWS],
                            "index": _index(minimum), "columns": ["value"]}
        self.table.tooltip = lesion_summary(m)  # the report's sentence, word for word
        self._draw_rano(m.get("lesions") or [])
        return m

    def _draw_rano(self, lesions: list[dict[str, Any]]) -> None:
        """Longest (cyan) and perpendicular (yellow) diameters of up to 5 lesions as lines."""
        lines, colors = [], []
        for lesion in lesions[:5]:
            for key, color in (("longest_endpoints", "cyan"), ("perpendicular_endpoints", "yellow")):
                ends = lesion.get(key)
                if ends and ends[0] != ends[1]:
                    lines.append(np.array([voxel_to_display(self.layer, p) for p in ends]))
                    colors.append(color)
        if RANO_LAYER in self._viewer.layers:
            shapes = self._viewer.layers[RANO_LAYER]
            shapes.data = []
            if lines:
                shapes.add_lines(lines, edge_color=colors, edge_width=0.8)
        elif lines:
            self._viewer.add_shapes(lines, shape_type="line", edge_color=colors, edge_width=0.8,
                                    name=RANO_LAYER, scale=self.layer.scale, translate=self.layer.translate)
            self._viewer.layers.selection.active = self.layer

    # -- saving -------------------------------------------------------------------------------
    def _target(self, caption: str, default: str, filter: str) -> tuple[Path, bool] | None:
        """Ask for a path; an existing file is replaced only after a Yes."""
        answer = self.ask_path(caption, default, filter)
        if not answer:
            return None
        path = Path(answer)
        if path.exists():
            if not self.confirm(f"{path.name} already exists. Replace it?"):
                self.status.value = f"Not saved: {path.name} already exists."
                show_info(self.status.value)
                return None
            return path, True
        return path, False

    def _default(self, suffix: str) -> str:
        flair = self._reference()
        folder = Path(source_meta(flair).get("path", Path.home() / "x")).parent
        return str(folder / f"{exam_stem(flair) if flair is not None else 'tumor'}{suffix}")

    def save_json(self) -> Path | None:
        """Write the measurements and provenance as JSON."""
        target = self._target("Save measurements", self._default("_tumor_measurements.json"), "JSON (*.json)")
        if target is None or self.layer is None:
            return None
        flair = self._reference()
        record = {"measurements": self.measure(), "provenance": self.provenance, "layer": self.layer.name,
                  "kind": "whole tumour (clicks)" if self.kind == "whole" else "BraTS 2023 labels",
                  "manual_edits": self.edited, "classes": CLASS_NAMES,
                  "reference": {"layer": flair.name if flair is not None else None,
                                "path": source_meta(flair).get("path")},
                  "created": datetime.datetime.now().isoformat(timespec="seconds")}
        text = json.dumps(record, indent=2, default=_jsonable)
        return self._write(target, lambda tmp: tmp.write_text(text))

    def export_nifti(self) -> Path | None:
        """Export the labels on the FLAIR series' own grid as NIfTI (asks before replacing)."""
        from ...core.export import save_labels_nifti

        target = self._target("Export labels as NIfTI", self._default("_tumor.nii.gz"),
                              "NIfTI (*.nii.gz *.nii)")
        flair = self._reference()
        if target is None or self.layer is None or flair is None:
            return None
        reference = layer_volume(flair)
        return self._write(target, lambda _: save_labels_nifti(
            self.labels_volume(), reference, target[0], overwrite=target[1], description=_description(self)),
            atomic=False)

    def export_dicom_seg(self) -> Path | None:
        """Export the labels as DICOM SEG referencing the FLAIR DICOM series."""
        from ...core.export import save_dicom_seg

        target = self._target("Export DICOM SEG", self._default("_tumor_seg.dcm"), "DICOM (*.dcm)")
        flair = self._reference()
        if target is None or self.layer is None or flair is None:
            return None
        source = layer_volume(flair)
        names = CLASS_NAMES if self.kind == "brats" else {1: "whole tumour"}
        kind = "SEMIAUTOMATIC" if self.edited or self.kind == "whole" else "AUTOMATIC"
        return self._write(target, lambda _: save_dicom_seg(
            self.labels_volume(), source, target[0], label_names=names, overwrite=target[1],
            algorithm_type=kind), atomic=False)

    def _write(self, target: tuple[Path, bool], write: Callable[[Path], Any],
               atomic: bool = True) -> Path | None:
        from ...core.io import atomic_output

        path, overwrite = target
        try:
            if atomic:
                with atomic_output(path, overwrite=overwrite) as tmp:
                    write(tmp)
            else:
                write(path)
        except (OSError, ValueError, ImportError) as exc:
            show_error(f"{path.name} was not written: {exc}")
            self.status.value = f"{path.name} was not written."
            return None
        self.status.value = f"Saved {path}."
        show_info(self.status.value)
        return path

    def update_buttons(self) -> None:
        """Enable what applies: DICOM SEG only when FLAIR came from a DICOM series."""
        flair = self._reference()
        has = self.layer is not None
        self.json_button.enabled = self.nifti_button.enabled = has and flair is not None
        self.seg_button.enabled = has and bool(source_meta(flair).get("dicom_files"))
        self.restore_button.enabled = existing_autosave(flair) is not None


def layer_measurements(volume: Any, kind: str) -> dict[str, Any]:
    """What the table shows for a labels Volume: `tumor_measurements` (BraTS labels), or the
    whole-tumour volume only (a click mask, ``kind == "whole"``). No Qt: a worker may call it."""
    if kind == "whole":
        count = int(np.count_nonzero(volume.data))
        return {"whole_tumor_ml": count * volume.voxel_volume_ml, "lesions": []}
    from ...core.tasks.measure import tumor_measurements

    return tumor_measurements(volume)


def _index(minimum: float) -> list[str]:
    """Row names of the measurements table, the RANO minimum diameter filled in."""
    return [name.format(min=f"{minimum:g}") for name, _ in ROWS]


def touch(layer: napari.layers.Layer) -> None:
    """Mark `layer` as the tumour labels the reader worked on last (the report takes that one)."""

    layer.metadata[TOUCHED] = time.time()


def _description(results: TumorResults) -> str:
    model = results.provenance.get("model_id", "clicks" if results.kind == "whole" else "model")
    return f"napari-brain-dl tumour {model}{' edited' if results.edited else ''}"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{float(value):.2f}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray | Path):
        return value.tolist() if isinstance(value, np.ndarray) else str(value)
    return str(value)
