"""Subcommand ``rerun``: a result again from its provenance sidecar alone (`core.jobs.rerun`).

Exit code 1 when an output differs from the recorded one.
"""

from __future__ import annotations

import argparse

from ..core import progress
from ._common import EXIT_SOME_FAILED, Subparsers, note, print_result


def register(subparsers: Subparsers) -> None:
    """Add ``rerun`` to an argparse ``add_subparsers()`` object."""
    rer = subparsers.add_parser("rerun", help="run a result again from its provenance sidecar alone")
    rer.add_argument("sidecar", help="OUT.nii.gz.json (or the output file it describes)")
    rer.add_argument("--output-dir", help="write the new outputs here (default: replace the originals)")
    rer.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    rer.add_argument("--allow-changed-inputs", action="store_true", help="run even if an input changed")
    rer.set_defaults(func=cmd_rerun)


def cmd_rerun(args: argparse.Namespace) -> int:
    """``napari-brain-dl rerun SIDECAR [--output-dir DIR] [--overwrite] [--allow-changed-inputs]``."""
    from ..core.jobs.rerun import rerun

    report = rerun(args.sidecar, args.output_dir, overwrite=args.overwrite,
                   allow_changed_inputs=args.allow_changed_inputs, progress=progress.stderr_progress,
                   notify=note)
    print_result(report["result"])
    differ = 0
    for role, out in report["outputs"].items():
        state = ("identical (sha256)" if out["identical"] else
                 "voxel-identical" if out["voxel_identical"] else "DIFFERS from the recorded output")
        differ += not (out["identical"] or out["voxel_identical"] or role == "json")
        print(f"{out['path']}: {state}")
    return EXIT_SOME_FAILED if differ else 0
