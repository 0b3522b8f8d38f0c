""""Report" dock widget: the exam report (HTML, and PDF) from what the viewer shows.

The scans are the viewer's 3D image layers (FLAIR first when there is one); the tumour labels
are the ones the reader worked on last (a model's result as corrected by paint or clicks, or
the newest tumour labels layer), heatmaps are the Explain
widget's layers (their checks are shown when the layer carries them), and synthetic images
are marked in every figure. Choose where to save, then Report: the figures and the file are
made off the UI thread (`core.report`), with progress and Cancel. Patient identifiers are
left out unless "Include patient identifiers" is ticked.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import napari.viewer
import numpy as np
from magicgui.widgets import CheckBox, Container, FileEdit, Label, LineEdit

from ...core.progress import CancelToken, check
from ...core.provenance import file_entry
from ..dock_layout import adopt
from ..layers import is_synthetic_layer, layer_contrast, layer_volume
from .task_panel import TaskPanel
from .tumor_clicks import TUMOR_KIND
from .tumor_results import TOUCHED


def fill_inputs(exam: Any) -> None:
    """sha256 of each input: its file when it has one, else its voxel data (made in this session)."""



    for name, entry in exam.inputs.items():
        volume = entry.pop("volume", None) or exam.scans.get(name)
        path = Path(entry.get("path") or "")
        if entry.get("path") and path.exists():
            entry.update(file_entry(path))
        elif volume is not None:
            data = np.ascontiguousarray(np.asarray(volume.data))
            entry["path"] = entry.get("path") or "(made in this session: hash of the voxel data)"
            entry["sha256"] = hashlib.sha256(data.tobytes()).hexdigest()


class ReportWidget(TaskPanel, Container):
    """Write a self-contained HTML (and PDF) report of the exam in the viewer.

    Attributes tests may set: ``output.value`` (the .html path), ``pdf.value``,
    ``identifiers.value``, ``patient_id.value``, ``date.value``, ``synchronous``; ``run()``,
    ``cancel()``; after a run ``written`` (the paths) and ``exam`` (the `ExamReport`).
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self.synchronous = False
        self.written: list[Path] = []
        self.exam: Any = None
        self.output = FileEdit(mode="w", label="Save as", filter="*.html", value="")
        self.pdf = CheckBox(text="Also write a PDF beside it", value=True)
        self.identifiers = CheckBox(text="Include patient identifiers", value=False)
        self.patient_id = LineEdit(label="Patient id", value="")
        self.date = LineEdit(label="Exam date", value="")
        self.contents = Label(label="Contents", value="")
        self.extend([self.output, self.pdf, self.identifiers, self.patient_id, self.date, self.contents,
                     *self.task_controls("Choose where to save the report, then Report.", run_text="Report")])
        viewer.layers.events.inserted.connect(self._layers_changed)
        viewer.layers.events.removed.connect(self._layers_changed)
        self._layers_changed()
        adopt(self)  # one scrollable tab in the shared dock column

    # -- what goes in ----------------------------------------------------------------------------------
    def _sorted_layers(self) -> tuple[list[Any], list[Any], list[Any]]:
        """(scan layers, FLAIR first; labels layers with provenance; heatmap layers)."""
        from napari.layers import Image, Labels

        scans, labels, heatmaps = [], [], []
        for layer in self._viewer.layers:
            if getattr(layer, "ndim", 0) != 3 or getattr(layer, "rgb", False):
                continue
            if isinstance(layer, Image):
                (heatmaps if layer.metadata.get("explain") else scans).append(layer)
            elif isinstance(layer, Labels) and (layer.metadata.get("provenance") is not None
                                                or layer.metadata.get(TUMOR_KIND)):
                labels.append(layer)
        scans.sort(key=lambda la: (layer_contrast(la) != "flair", is_synthetic_layer(la)))
        # the labels the reader worked on last first, else the newest layer
        order = {id(la): i for i, la in enumerate(labels)}
        labels.sort(key=lambda la: (-float(la.metadata.get(TOUCHED, 0.0)), -order[id(la)]))
        return scans, labels, heatmaps

    def _layers_changed(self, *_: Any) -> None:
        scans, labels, heatmaps = self._sorted_layers()
        text = f"{len(scans)} scan(s)"
        text += f", labels '{labels[0].name}'" if labels else ", no labels"
        text += f", {len(heatmaps)} heatmap(s)" if heatmaps else ""
        self.contents.value = text

    def build_exam(self) -> Any:
        """The `ExamReport` of the viewer's layers (UI thread: reads layers, copies nothing big)."""
        from ...core.report import ExamReport, Heatmap

        scans, labels, heatmaps = self._sorted_layers()
        if not scans:
            raise ValueError("There is no 3D image layer to report on; load an exam first.")
        names = [la.name for la in scans]
        exam = ExamReport(
            {la.name: layer_volume(la) for la in scans},
            synthetic={la.name for la in scans if is_synthetic_layer(la)},
            date=self.date.value or None,
            patient_id=self.patient_id.value or None,
            include_identifiers=bool(self.identifiers.value),
        )
        if labels:
            exam.labels = layer_volume(labels[0])
            exam.labels_name = f"layer '{labels[0].name}'"
            exam.labels_kind = "whole" if labels[0].metadata.get(TUMOR_KIND) == "whole" else "brats"
            exam.labels_edited = bool(labels[0].metadata.get("brain_dl_edited"))
            exam.provenances.append(dict(labels[0].metadata.get("provenance") or {}))
        for la in heatmaps:
            checks = la.metadata.get("checks") or la.metadata.get("provenance", {}).get("checks") or []
            checks = list(checks.values()) if isinstance(checks, dict) else list(checks)
            prov = dict(la.metadata.get("provenance") or {})
            exam.heatmaps.append(Heatmap(layer_volume(la), f"heatmap: {prov.get('method', la.name)}",
                                         checks, prov))
            exam.provenances.append(prov)
        exam.provenances += [dict(la.metadata["provenance"]) for la in scans
                             if la.name in exam.synthetic and la.metadata.get("provenance")]
        exam.inputs = {n: {"path": str(exam.scans[n].meta.get("path") or "")} for n in names}
        if exam.labels is not None:
            exam.inputs["labels"] = {"path": "", "volume": exam.labels}  # the labels as shown now
        return exam

    # -- run -------------------------------------------------------------------------------------------
    def target(self) -> Path | None:
        """The chosen .html path (suffix added when missing), or None when none was chosen."""
        value = str(self.output.value or "").strip()
        if value in ("", "."):
            return None
        path = Path(value)
        return path if path.suffix.lower() in (".html", ".htm") else path.with_suffix(".html")

    def run(self, *_: Any) -> None:
        """Build the report from the layers and write it (worker thread unless `synchronous`)."""
        path = self.target()
        if path is None:
            self.say("Choose where to save the report (Save as).")
            return
        pdf = path.with_suffix(".pdf") if self.pdf.value else None
        existing = [p for p in (path, pdf) if p is not None and p.exists()]
        if existing:
            self.say(f"{existing[0]} already exists; choose another name (nothing is replaced).")
            return
        try:
            exam = self.build_exam()
        except ValueError as exc:
            self.say(str(exc))
            return
        self.exam = exam

        def work(progress: Any, cancel: CancelToken, notify: Any) -> list[Path]:
            from ...core.io import atomic_output
            from ...core.report import align, build_html, build_pdf

            progress(0, 4, "Hashing the inputs")
            fill_inputs(exam)
            check(cancel)
            progress(1, 4, "Putting the layers on one grid")
            align(exam)
            check(cancel)
            progress(2, 4, "Drawing the key slices")
            text = build_html(exam)
            check(cancel)
            if pdf is not None:
                progress(3, 4, "Writing the PDF")
                with atomic_output(pdf) as tmp:
                    build_pdf(exam, tmp)
            try:
                check(cancel)  # cancelled while the PDF was drawn: leave nothing behind
            except Exception:
                if pdf is not None:
                    pdf.unlink(missing_ok=True)
                raise
            with atomic_output(path) as tmp:
                tmp.write_text(text, encoding="utf-8")
            progress(4, 4, "done")
            return [path] + ([pdf] if pdf is not None else [])

        self.start_task(work, "Report", "Writing the report...", self._done, self._error)

    def _done(self, written: list[Path]) -> None:
        if self.cancelled_result():
            return
        self.written = written
        self._finish(f"Wrote {written[0].name}" + (" + PDF." if len(written) > 1 else "."))
        self.status.tooltip = "\n".join(str(p) for p in written)

    def _error(self, exc: BaseException) -> None:
        self.task_failed(exc, "The report")
