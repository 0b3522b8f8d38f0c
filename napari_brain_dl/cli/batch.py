"""Command-line subcommands ``batch`` (a task over a cohort, on Dask) and ``open-subject``.

``batch`` prints a progress line per finished subject on stderr and the CSV path at the end;
exit code 0 when every subject succeeded, 1 when some failed (their reasons are in the CSV),
3 for bad input. ``open-subject COHORT.csv ID`` opens that subject's scans and results in napari.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..core import progress
from ..core.batch import (
    TASKS,  # no torch, no dask: only the names
    run_batch,
)
from ..core.cohort import subject_files
from ..core.errors import InputError
from ..core.provenance import read_sidecar, sidecar_path
from ._common import EXIT_SOME_FAILED, Subparsers, add_device_option


def register(subparsers: Subparsers) -> None:
    """Add ``batch`` and ``open-subject`` to an argparse ``add_subparsers()`` object."""

    b = subparsers.add_parser("batch", help="run a task over a cohort (BIDS or one folder per subject)")
    b.add_argument("--task", required=True, choices=TASKS, help="what to run on every subject")
    b.add_argument("--input-dir", required=True, help="BIDS dataset or one folder per subject")
    b.add_argument("--output-dir", required=True, help="results, one folder per subject, and cohort.csv")
    b.add_argument("--model", help="model id, card or folder (default: the task's own default)")
    add_device_option(b, default="cpu", note="; per worker")
    b.add_argument("--target", default="flair", help="synthesize: contrast to synthesise")
    b.add_argument("--contrast", help="skullstrip / parcellate / super-resolve: which scan to use")
    b.add_argument("--spacing", type=float, help="super-resolve: output voxel size in mm")
    b.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    b.add_argument("--scheduler", help="address of a dask.distributed scheduler (tcp://host:8786)")
    b.set_defaults(func=cmd_batch)

    o = subparsers.add_parser("open-subject", help="open one subject of a cohort CSV in napari")
    o.add_argument("csv", help="cohort.csv written by `batch`")
    o.add_argument("subject", help="subject id (as in the CSV's id or subject column)")
    o.set_defaults(func=cmd_open_subject)


def cmd_batch(args: argparse.Namespace) -> int:
    """``napari-brain-dl batch --task T --input-dir DIR --output-dir OUT [--workers N] [--scheduler A]``."""
    from ..core.device import choose_device

    if args.workers < 1:
        raise InputError("--workers must be 1 or more.")
    choose_device(args.device)  # this machine's accelerator, before any subject is read
    options = {"model": args.model, "device": args.device, "target": args.target,
               "contrast": args.contrast, "spacing": args.spacing}
    result = run_batch(args.input_dir, args.output_dir, args.task,
                       {k: v for k, v in options.items() if v is not None},
                       workers=args.workers, scheduler=args.scheduler, progress=progress.stderr_progress)
    ok = len(result.rows) - result.failed
    print(f"{result.csv_path}: {ok} subject(s) done ({result.skipped} already finished), "
          f"{result.failed} failed")
    for row in result.rows:
        if row["status"] == "failed":
            print(f"  {row['id']}: {row['error']}", file=sys.stderr)
    return EXIT_SOME_FAILED if result.failed else 0


def subject_layers(csv_path: str | Path, subject: str) -> list[tuple[Any, dict[str, Any], str]]:
    """Layer data tuples of one subject: its scans as one exam, then its results on their grids.

    Label results (tumour, brain mask, parcellation) become labels layers; synthetic images
    keep their SYNTHETIC stamp in name and metadata. No viewer is needed (tests, scripts).
    """
    from .._napari.layers import study_to_layer_data, volume_to_layer_data
    from ..core import io
    from ..core.study import is_label_image, load_study
    from ..core.synthetic import is_synthetic

    inputs, outputs = subject_files(csv_path, subject)
    layers = list(study_to_layer_data(load_study([str(p) for p in inputs])))
    for path in outputs:
        if not path.name.endswith((".nii", ".nii.gz", ".nrrd", ".mha")):
            continue
        vol = io.load(path)
        meta: dict[str, Any] = {}
        if sidecar_path(path).exists():
            meta["provenance"] = read_sidecar(sidecar_path(path))
        if is_synthetic(vol):
            meta["synthetic"] = True
            vol.name = f"{vol.name} (SYNTHETIC)"
        kind = "labels" if is_label_image(vol) and not meta.get("synthetic") else "image"
        extra = {"opacity": 0.5} if kind == "labels" else {"colormap": "magenta" if meta.get("synthetic")
                                                          else "gray"}
        layers.append(volume_to_layer_data(vol, kind, metadata=meta, **extra))
    return layers


def cmd_open_subject(args: argparse.Namespace) -> int:
    """``napari-brain-dl open-subject COHORT.csv SUBJECT``: the scans and results in napari."""
    layers = subject_layers(args.csv, args.subject)
    import napari
    from napari.layers import Layer

    from .._napari import display

    viewer = napari.Viewer(title=f"napari-brain-dl: {args.subject}")
    display.install(viewer)
    for data, kwargs, kind in layers:
        viewer.add_layer(Layer.create(data, kwargs, kind))
    napari.run()
    return 0
