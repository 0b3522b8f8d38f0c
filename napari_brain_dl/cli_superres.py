"""Command-line subcommand ``super-resolve``: thick-slice scan -> isotropic volume.

Exit codes as in `cli_models`: 0 success (also when the scan is already isotropic: the reason
is printed and nothing is written), 3 bad input (one sentence on stderr, nothing written).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from .cli_models import (
    _bad_input_errors,
    _check_outputs,
    _fail,
    _sentence,
    add_device_option,
    flush_warnings,
    load_scan,
    write_json,
)


def register(subparsers: Any) -> None:
    """Add ``super-resolve`` to an argparse ``add_subparsers()`` object."""
    sr = subparsers.add_parser(
        "super-resolve", help="thick-slice MRI -> isotropic volume (self-supervised, B-spline or a model)"
    )
    sr.add_argument("input", help="scan (NIfTI/MGZ/NRRD file or DICOM folder)")
    sr.add_argument("output", help="output .nii.gz / .nii (or .nrrd / .mha)")
    sr.add_argument(
        "--method",
        default="self-supervised",
        help="self-supervised (default) | bspline | a super_resolution model card (id or path)",
    )
    sr.add_argument("--spacing", type=float, default=None, help="output voxel size in mm (default: in-plane)")
    sr.add_argument("--seed", type=int, default=0, help="seed of the self-supervised training")
    sr.add_argument("--json", help="write provenance, grids in/out, seconds and method as JSON here")
    add_device_option(sr)
    sr.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    sr.set_defaults(func=cmd_super_resolve)


def cmd_super_resolve(args: argparse.Namespace) -> int:
    """``napari-brain-dl super-resolve IN OUT [--method M] [--spacing MM] [--json J]``."""
    from .core import io
    from .core.device import choose_device
    from .core.progress import stderr_progress
    from .core.tasks.super_resolve import NothingToDo, super_resolve

    start = time.perf_counter()
    try:
        _check_outputs([Path(args.output)], args.overwrite)
        if args.json and Path(args.json).exists() and not args.overwrite:
            raise FileExistsError(f"{args.json} already exists; pass --overwrite to replace it.")
        choose_device(args.device)
        volume = load_scan(args.input)
        try:
            result = super_resolve(
                volume,
                method=args.method,
                spacing=args.spacing,
                device=args.device,
                seed=args.seed,
                progress=stderr_progress,
            )
        except NothingToDo as exc:
            flush_warnings()
            print(_sentence(exc))
            return 0
        io.save(result.image, args.output, overwrite=args.overwrite,
                description=result.image.meta.get("description"))
        report = {
            "input": str(args.input),
            "output": str(args.output),
            "method": result.method,
            "grid_in": volume.info() | {"warnings": volume.warnings},
            "grid_out": {k: v for k, v in result.image.info().items() if k != "warnings"},
            "seconds": round(time.perf_counter() - start, 2),
            "notes": result.notes,
            "self_check": result.provenance.get("self_check"),
            "provenance": result.provenance,
        }
        write_json(args.json, report, args.overwrite)
        from .core.provenance import record_cli_outputs

        record_cli_outputs(args, {"output": args.output, "json": args.json}, {"input": args.input},
                           result.provenance)
    except _bad_input_errors() as exc:
        return _fail(_sentence(exc))
    flush_warnings()
    for note in result.notes:
        print(f"note: {note}")
    shape = "x".join(map(str, result.image.shape))
    print(f"{args.output}: {shape} at {result.image.spacing[0]:.3f} mm isotropic ({result.method}, "
          f"{report['seconds']:.1f} s)")
    return 0


