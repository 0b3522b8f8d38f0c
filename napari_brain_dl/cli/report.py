"""Command-line subcommand ``report`` (a self-contained HTML/PDF per exam).

Exit codes as in `cli`: 0 success, 3 bad input (one sentence on stderr, nothing written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import Subparsers


def register(subparsers: Subparsers) -> None:
    """Add ``report`` to an argparse ``add_subparsers()`` object."""
    rep = subparsers.add_parser("report", help="self-contained HTML (and PDF) report of one exam")
    rep.add_argument("--scan", action="append", required=True, metavar="NAME=FILE",
                     help="a scan of the exam, e.g. FLAIR=t2f.nii.gz (repeat; the first is the grid)")
    rep.add_argument("--labels", help="tumour labels (BraTS 2023, e.g. from `segment`); sidecar read")
    rep.add_argument("--heatmap", action="append", default=[],
                     help="heatmap from `explain` (repeat); its sidecar gives the check verdicts")
    rep.add_argument("--synthetic", action="append", default=[], metavar="NAME",
                     help="scan NAME is synthetic (also read from the files' sidecars / headers)")
    rep.add_argument("--history", action="append", default=[], metavar="DATE=LABELS",
                     help="labels of another exam of this patient (repeat): volumes over time")
    rep.add_argument("--cohort", help="cohort.csv from `batch --task segment`: volumes of every exam "
                     "(session) of --subject over time")
    rep.add_argument("--subject", help="with --cohort: the patient (subject label in the CSV)")
    rep.add_argument("--date", help="date (or label) of this exam, for the plot over time")
    rep.add_argument("--patient-id", help="patient identifier (shown only with --include-identifiers)")
    rep.add_argument("--include-identifiers", action="store_true",
                     help="show the patient identifier and file paths (left out by default)")
    rep.add_argument("-o", "--output", required=True, help="report.html to write")
    rep.add_argument("--pdf", help="also write this PDF")
    rep.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    rep.set_defaults(func=cmd_report)


def _pairs(items: list[str], what: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"{what} {item!r} must be NAME=FILE.")
        out.append((name, path))
    return out


def cmd_report(args: argparse.Namespace) -> int:
    """``napari-brain-dl report --scan FLAIR=F [--labels L] [--heatmap H] -o report.html [--pdf P]``."""
    from ..core.io import atomic_output
    from ..core.report import ExamReport, build_html, build_pdf, exam_from_files, history_from_cohort

    if bool(args.cohort) != bool(args.subject):
        raise ValueError("--cohort and --subject go together.")
    values = history_from_cohort(args.cohort, args.subject) if args.cohort else None
    for path in (args.output, args.pdf):
        if path and Path(path).exists() and not args.overwrite:
            raise FileExistsError(f"{path} already exists; pass --overwrite to replace it.")
    exam: ExamReport = exam_from_files(
        scans=_pairs(args.scan, "--scan"),
        labels=args.labels,
        heatmaps=args.heatmap,
        synthetic=args.synthetic,
        history=_pairs(args.history, "--history"),
        date=args.date,
        patient_id=args.patient_id,
        include_identifiers=args.include_identifiers,
        history_values=values,
    )
    html = build_html(exam)
    with atomic_output(args.output, overwrite=args.overwrite) as tmp:
        tmp.write_text(html, encoding="utf-8")
    if args.pdf:
        with atomic_output(args.pdf, overwrite=args.overwrite) as tmp:
            build_pdf(exam, tmp)
    for warning in exam.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    print(f"wrote {args.output}" + (f" and {args.pdf}" if args.pdf else ""))
    return 0
