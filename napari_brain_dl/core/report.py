"""Exam report: one self-contained HTML file (images inline as base64 PNG) and the same as PDF.

Contents: the research-use statement; key axial slices in the radiological convention with
the tumour labels, heatmaps (titled with their check verdicts) and synthetic images (magenta
frame, "SYNTHETIC - not acquired"); the volumes table (`tasks.measure.tumor_measurements`);
the heatmap checks; the models used (card id, weights sha256, intended use); volumes over
time when several exams of one patient are given; the inputs by sha256. Patient identifiers
(the patient id, file paths) appear only with ``include_identifiers``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .cohort import read_cohort
from .provenance import file_entry, read_sidecar, sidecar_path
from .volume import Volume

STATEMENT = ("Research use only. Not a medical device; not for diagnosis. Every outline, "
             "measurement and heatmap must be reviewed by a qualified reader.")
VERDICT_COLORS = {"pass": "#1b7f1b", "warn": "#b36b00", "fail": "#c0141b"}


@dataclass
class Heatmap:
    """A heatmap on the exam's grid, with its check results (dicts: name, value, verdict, sentence)."""

    volume: Volume
    name: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExamReport:
    """Everything one report shows. `scans` is ordered; the first defines the grid."""

    scans: dict[str, Volume]
    labels: Volume | None = None
    heatmaps: list[Heatmap] = field(default_factory=list)
    synthetic: set[str] = field(default_factory=set)
    provenances: list[dict[str, Any]] = field(default_factory=list)
    history: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    date: str | None = None
    patient_id: str | None = None
    include_identifiers: bool = False
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    title: str = "Brain MRI exam report"
    warnings: list[str] = field(default_factory=list)  # "file: warning" of the scans read
    labels_name: str | None = None  # which labels are reported (e.g. the layer the reader corrected)
    labels_kind: str = "brats"  # "brats" (labels 1-3) or "whole" (a 0/1 whole-tumour mask)
    labels_edited: bool = False  # corrected by the reader after the model

    def measurements(self) -> dict[str, Any] | None:
        """Tumour volumes and RANO diameters of `labels` (None without labels).

        A whole-tumour mask ("whole") gives the whole-tumour volume only.
        """

        from .tasks.measure import tumor_measurements

        if self.labels is None:
            return None
        if self.labels_kind == "whole":
            count = int(np.count_nonzero(np.asarray(self.labels.data)))
            return {"whole_tumor_ml": count * self.labels.voxel_volume_ml, "voxel_counts": {"whole": count},
                    "lesions": [], "warnings": [], "kind": "whole"}
        return tumor_measurements(self.labels)


def lesion_summary(m: dict[str, Any]) -> str:
    """The enhancing-lesion count as the widget and the report both state it (minimum size named).

    Example:
        >>> text = lesion_summary({"lesions": [{"measurable": True}, {"measurable": False}],
        ...                        "measurable_lesions": 1, "method": {"min_diameter_mm": 10.0}})
        >>> print(text.replace("; ", "\\n"))
        Measurable enhancing lesions (RANO: both axial diameters >= 10 mm): 1
        smaller enhancing foci, not counted: 1.
    """
    if "measurable_lesions" not in m:
        return "Whole-tumour mask: no enhancing lesions are measured."
    minimum = float(m.get("method", {}).get("min_diameter_mm", 10.0))
    smaller = len(m.get("lesions", [])) - int(m["measurable_lesions"])
    return (f"Measurable enhancing lesions (RANO: both axial diameters >= {minimum:g} mm): "
            f"{m['measurable_lesions']}; smaller enhancing foci, not counted: {smaller}.")


def _on_grid(vol: Volume, ref: Volume, labels: bool) -> Volume:
    from .study import resample_to

    return vol if vol.same_grid(ref, atol=1e-3) else resample_to(vol, ref, labels=labels)


def align(exam: ExamReport) -> ExamReport:
    """Put every scan, the labels and the heatmaps on the first scan's grid (resampled if needed)."""
    if not exam.scans:
        raise ValueError("A report needs at least one scan.")
    ref = next(iter(exam.scans.values()))
    exam.scans = {n: _on_grid(v, ref, labels=False) for n, v in exam.scans.items()}
    if exam.labels is not None:
        exam.labels = _on_grid(exam.labels, ref, labels=True)
    for heat in exam.heatmaps:
        heat.volume = _on_grid(heat.volume, ref, labels=False)
    return exam


def _sidecar(path: str | os.PathLike[str]) -> dict[str, Any]:

    return read_sidecar(path) if sidecar_path(path).is_file() else {}


def exam_from_files(
    scans: list[tuple[str, str]],
    labels: str | None = None,
    heatmaps: list[str] | None = None,
    synthetic: list[str] | None = None,
    history: list[tuple[str, str]] | None = None,
    date: str | None = None,
    patient_id: str | None = None,
    include_identifiers: bool = False,
    history_values: list[tuple[str, dict[str, Any]]] | None = None,
) -> ExamReport:
    """Assemble an `ExamReport` from files; provenance and check verdicts come from their sidecars.

    Args:
        scans: (name, file) pairs; the first is the grid the rest is resampled onto.
        labels: Tumour label map (BraTS 2023).
        heatmaps: Heatmap files written by ``explain`` (sidecar holds the checks).
        synthetic: Names of scans that are synthetic (files stamped synthetic are found anyway).
        history: (date, labels file) of other exams of the same patient.
        date: This exam's date or label (default "this exam").
        history_values: (date, volumes) of the patient's exams, this one included (a cohort CSV,
            see `history_from_cohort`).

    Raises:
        ValueError: No scan, or a scan or result that cannot be read.
    """
    from . import io
    from .synthetic import is_synthetic

    if not scans:
        raise ValueError("A report needs at least one scan.")
    vols: dict[str, Volume] = {}
    marked = set(synthetic or [])
    inputs = {}
    warnings: list[str] = []
    for name, path in scans:
        vol = io.load(path)
        warnings += [f"{Path(path).name}: {w}" for w in vol.warnings]
        record = _sidecar(path)
        if is_synthetic(vol) or record.get("synthetic") or record.get("result", {}).get("synthetic"):
            marked.add(name)
        vols[name] = vol if not vols else _on_grid(vol, next(iter(vols.values())), labels=False)
        inputs[name] = file_entry(path)
    ref = next(iter(vols.values()))
    exam = ExamReport(vols, synthetic=marked & set(vols), date=date, patient_id=patient_id,
                      include_identifiers=include_identifiers, inputs=inputs, warnings=warnings)
    if labels:
        exam.labels = _on_grid(io.load(labels), ref, labels=True)
        exam.provenances.append(_record_or_meta(_sidecar(labels), exam.labels))
        exam.inputs["labels"] = file_entry(labels)
    for path in heatmaps or []:
        record = _sidecar(path)
        checks = (record.get("explanation") or {}).get("checks") or {}
        vol = _on_grid(io.load(path), ref, labels=False)
        method = (record.get("explanation") or {}).get("method") or Path(path).name
        exam.heatmaps.append(Heatmap(vol, f"heatmap: {method}", list(checks.values()),
                                     _record_or_meta(record, vol)))
        exam.provenances.append(exam.heatmaps[-1].provenance)
    if history or history_values:
        items = [(d, _measure(io.load(p))) for d, p in history or []] + list(history_values or [])
        current = None if history_values else exam.measurements()  # a cohort CSV lists this exam too
        exam.history = sorted(items + ([(date or "this exam", current)] if current else []),
                              key=lambda item: item[0])
    return exam


def history_from_cohort(csv_path: str | os.PathLike[str], subject: str) -> list[tuple[str, dict[str, Any]]]:
    """(session or id, volumes) of every segmented exam of `subject` in a cohort CSV, by session.

    Raises:
        ValueError: No successful segmentation of that subject in the CSV.
    """

    keys = ("whole_tumor_ml", "tumor_core_ml", "enhancing_ml")
    rows = [r for r in read_cohort(csv_path) if subject in (r.get("subject"), r.get("id"))
            and r.get("status") == "ok" and r.get("whole_tumor_ml")]
    if not rows:
        raise ValueError(f"{csv_path} has no segmented exam of {subject!r}.")
    return sorted(((r.get("session") or r["id"], {k: float(r[k]) for k in keys}) for r in rows),
                  key=lambda item: item[0])


def _measure(labels: Volume) -> dict[str, Any]:
    from .tasks.measure import tumor_measurements

    return tumor_measurements(labels)


def _record_or_meta(record: dict[str, Any], vol: Volume) -> dict[str, Any]:
    if record:
        return {**record.get("result", {}), "model_id": record.get("model", {}).get("id"),
                "weights_sha256": record.get("model", {}).get("weights_sha256"),
                "package_version": record.get("product", {}).get("version")}
    return dict(vol.meta.get("provenance") or {})


# -- HTML ----------------------------------------------------------------------------------------------
def _esc(value: Any) -> str:
    return html.escape(str(value))


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(header: list[str], rows: list[list[Any]], raw: bool = False) -> str:
    head = "<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{c if raw else _esc(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table>{head}{body}</table>"


def volumes_rows(m: dict[str, Any]) -> list[list[Any]]:
    """Rows (region, mL, voxels) of the volumes table (one row for a whole-tumour mask)."""
    counts = m.get("voxel_counts", {})
    if m.get("kind") == "whole":
        return [["Whole tumour (mask)", f"{m['whole_tumor_ml']:.2f}", counts.get("whole", "")]]
    return [
        ["Necrotic / non-enhancing core (1)", f"{m['necrotic_core_ml']:.2f}",
         counts.get("necrotic_core", "")],
        ["Edema (2)", f"{m['edema_ml']:.2f}", counts.get("edema", "")],
        ["Enhancing tumour (3)", f"{m['enhancing_ml']:.2f}", counts.get("enhancing", "")],
        ["Tumour core (1+3)", f"{m['tumor_core_ml']:.2f}", ""],
        ["Whole tumour (1+2+3)", f"{m['whole_tumor_ml']:.2f}", ""],
    ]


def model_rows(provenances: list[dict[str, Any]]) -> list[list[Any]]:
    """One row per distinct model: id, name, weights sha256, device, intended use, version."""
    seen: dict[str, list[Any]] = {}
    for p in provenances:
        mid = p.get("model_id") or p.get("method") or "?"
        seen.setdefault(str(mid), [mid, p.get("model_name") or "", (p.get("weights_sha256") or "none")[:16],
                                   p.get("device") or "", p.get("intended_use") or "research",
                                   p.get("package_version") or ""])
    return list(seen.values())


def build_html(exam: ExamReport) -> str:
    """The report as one self-contained HTML document (no external file, script or font).

    Order: statement and exam facts, volumes, heatmap checks, key slices, volumes over time,
    models used, inputs.

    Example:
        >>> exam = exam_from_files([("FLAIR", "t2f.nii.gz")], labels="tumor.nii.gz")  # doctest: +SKIP
        >>> Path("report.html").write_text(build_html(exam))  # doctest: +SKIP
    """

    parts = [f"<h1>{_esc(exam.title)}</h1>", f'<p class="statement">{_esc(STATEMENT)}</p>']
    facts = [["Exam", exam.date or "not given"], ["Scans", ", ".join(
        f"{n} (SYNTHETIC)" if n in exam.synthetic else n for n in exam.scans)]]
    if exam.include_identifiers and exam.patient_id:
        facts.insert(0, ["Patient", exam.patient_id])
    parts.append(_table([], facts))
    if exam.synthetic:
        parts.append(f'<p class="synthetic">Synthetic images (computed, not acquired): '
                     f'{_esc(", ".join(sorted(exam.synthetic)))}. They are framed in magenta and must '
                     "never be read as acquired scans.</p>")
    parts += [_volumes_html(exam), _checks_html(exam), _slices_html(exam), _history_html(exam)]
    if exam.provenances:
        parts.append("<h2>Models used</h2>" + _table(
            ["Model card", "Name", "Weights sha256", "Device", "Intended use", "Version"],
            model_rows(exam.provenances)))
    ids = exam.include_identifiers
    inputs = [[n, (e.get("sha256") or "")[:16]] + ([e.get("path", "")] if ids else [])
              for n, e in exam.inputs.items()]
    parts.append("<h2>Inputs</h2>" + _table(["File", "sha256"] + (["Path"] if ids else []), inputs))
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    parts.append(f"<footer>napari-brain-dl {_esc(__version__)}, {now}. {_esc(STATEMENT)}</footer>")
    return _page(exam.title, "\n".join(p for p in parts if p))


def _volumes_html(exam: ExamReport) -> str:
    m = exam.measurements()
    if m is None:
        return ""
    parts = ["<h2>Volumes</h2>"]
    if exam.labels_name:
        edited = " (corrected by the reader)" if exam.labels_edited else ""
        parts.append(f"<p>Labels reported: {_esc(exam.labels_name)}{edited}.</p>")
    parts += [_table(["Region", "Volume (mL)", "Voxels"], volumes_rows(m)), f"<p>{_esc(lesion_summary(m))}"]
    if "sum_of_products_mm2" in m:
        parts.append(f" Sum of products {m['sum_of_products_mm2']:.0f} mm².")
    parts.append("</p>")
    return "".join(parts + [f"<p class='note'>{_esc(w)}</p>" for w in m["warnings"]])


def _checks_html(exam: ExamReport) -> str:
    if not exam.heatmaps:
        return ""
    rows = []
    for heat in exam.heatmaps:
        for c in heat.checks or [{"name": "-", "verdict": "not run", "value": "", "sentence": ""}]:
            color = VERDICT_COLORS.get(str(c.get("verdict")), "#555")
            value = c.get("value", "")
            value = f"{value:.3f}" if isinstance(value, (int, float)) else value
            rows.append([_esc(heat.name), _esc(c.get("name")),
                         f'<b style="color:{color}">{_esc(c.get("verdict"))}</b>', _esc(value),
                         _esc(c.get("sentence", ""))])
    return "<h2>Heatmap checks</h2>" + _table(["Heatmap", "Check", "Verdict", "Value", ""], rows, raw=True)


def _slices_html(exam: ExamReport) -> str:
    from . import report_figures as rf

    parts = ["<h2>Key slices</h2><p class='note'>Axial, radiological convention: the patient's "
             "left is on the right of each image (letters R / L / A / P on the edges).</p>"]
    if exam.labels is not None:
        legend = " ".join(f'<span class="swatch" style="background:rgb{tuple(int(255 * c) for c in col)}">'
                          f"</span>{_esc(rf.LABEL_NAMES[v])}" for v, col in rf.LABEL_COLORS.items() if v < 4)
        parts.append(f"<p class='legend'>{legend}</p>")
    for k in rf.key_slices(exam):
        parts.append(f"<figure>{_img(rf.png(rf.slice_figure(exam, k)), f'axial slice {k}')}"
                     f"<figcaption>Axial slice {k}</figcaption></figure>")
    return "".join(parts)


def _history_html(exam: ExamReport) -> str:
    from . import report_figures as rf

    if len(exam.history) < 2:
        return ""
    return ("<h2>Volumes over time</h2>" + _img(rf.png(rf.history_figure(exam.history)), "volumes")
            + _table(["Exam", "Whole tumour (mL)", "Tumour core (mL)", "Enhancing (mL)"],
                     [[d, f"{h['whole_tumor_ml']:.2f}", f"{h['tumor_core_ml']:.2f}",
                       f"{h['enhancing_ml']:.2f}"] for d, h in exam.history]))


def _page(title: str, body: str) -> str:
    style = """
body{font-family:Helvetica,Arial,sans-serif;max-width:1400px;margin:1.5em auto;color:#111}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.4em}
.statement{background:#fff3cd;border:1px solid #e0b000;padding:.6em;font-weight:bold}
.synthetic{background:#fbe5fb;border:2px solid #d000d0;padding:.5em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
figure{margin:.6em 0} img{max-width:100%} .note{color:#555;font-size:.9em}
.swatch{display:inline-block;width:1em;height:1em;margin:0 .3em 0 1em;vertical-align:middle}
footer{margin-top:2em;color:#555;font-size:.85em}"""
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{_esc(title)}</title>"
            f"<style>{style}</style></head><body>\n{body}\n</body></html>\n")


def build_pdf(exam: ExamReport, path: str | os.PathLike[str]) -> Path:
    """The report as PDF (matplotlib PdfPages): summary page, one page per key slice, volumes over time."""
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    from . import report_figures as rf

    m = exam.measurements()
    with PdfPages(str(path)) as pdf:
        fig = Figure(figsize=(8.27, 11.69))
        lines = [exam.title, "", STATEMENT, "", f"Exam: {exam.date or 'not given'}",
                 f"Scans: {', '.join(exam.scans)}"]
        if exam.include_identifiers and exam.patient_id:
            lines.insert(4, f"Patient: {exam.patient_id}")
        if exam.synthetic:
            lines.append(f"SYNTHETIC (not acquired): {', '.join(sorted(exam.synthetic))}")
        if m is not None:
            if exam.labels_name:
                lines += ["", f"Labels reported: {exam.labels_name}"
                          + (" (corrected by the reader)" if exam.labels_edited else "")]
            lines += ["", "Volumes (mL):"] + [f"  {r[0]}: {r[1]}" for r in volumes_rows(m)]
            lines += [lesion_summary(m)]
        for heat in exam.heatmaps:
            lines += ["", heat.name] + [f"  {c['name']}: {c['verdict']} - {c.get('sentence', '')}"
                                        for c in heat.checks]
        if exam.provenances:
            lines += ["", "Models:"]
            lines += [f"  {r[0]} weights {r[2]} ({r[4]})" for r in model_rows(exam.provenances)]
        wrapped = [w for line in lines for w in (textwrap.wrap(line, 95, subsequent_indent="    ") or [""])]
        fig.text(0.06, 0.95, "\n".join(wrapped), va="top", fontsize=8, family="monospace")
        pdf.savefig(fig)
        for k in rf.key_slices(exam):
            pdf.savefig(rf.slice_figure(exam, k))
        if len(exam.history) > 1:
            pdf.savefig(rf.history_figure(exam.history))
    return Path(path)
