"""Command-line subcommand ``synthesize``: a missing contrast computed from the ones given.

    napari-brain-dl synthesize [--t1 F] [--t1c F] [--t2 F] [--flair F] --target flair|t2|t1
        -o OUT_synthetic.nii.gz [--model auto|NAME|CARD|histogram] [--json J] [--device D] [--overwrite]

The model ``synth-mri`` takes every contrast given (any subset of T1, T1c, T2, FLAIR) and says
which it used. T1c is never synthesised (refused, exit 3). The output is in z-score units of
the target inside the brain (see `core.tasks.synthesize.OUTPUT_UNITS`), also stated in the
NIfTI description's provenance sidecar.

The output lies on the grid of the first contrast flag given on the command line (argv order,
e.g. ``--t1c a --t1 b`` -> a's grid). It is NIfTI only and its name must end with
``_synthetic`` before the extension: another name is refused with the right one suggested
(nothing is renamed silently). The file's header says SYNTHETIC (description and intent name);
``--json`` and the provenance sidecar (OUT.json, as every command writes) hold
``"synthetic": true`` and the provenance. Exit codes as in `cli_models`:
0 success, 3 bad input (one sentence on stderr, nothing written).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .cli_models import (
    _bad_input_errors,
    _fail,
    _sentence,
    add_device_option,
    flush_warnings,
    load_scan,
    write_json,
)

FLAGS = (("t1", "T1"), ("t1c", "T1c"), ("t2", "T2"), ("flair", "FLAIR"))


class _Ordered(argparse.Action):
    """Store the value and remember the order in which contrast flags were given."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        order = [d for d in getattr(namespace, "source_order", None) or [] if d != self.dest]
        namespace.source_order = [*order, self.dest]


def _target(text: str) -> str:
    from .core.tasks.synthesize import canonical

    try:
        return canonical(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def register(subparsers: Any) -> None:
    """Add ``synthesize`` to an argparse ``add_subparsers()`` object."""
    p = subparsers.add_parser(
        "synthesize", help="synthesise a missing contrast (marked SYNTHETIC: never an acquired scan)"
    )
    for flag, name in FLAGS:
        p.add_argument(f"--{flag}", action=_Ordered, help=f"acquired {name} scan")
    p.add_argument("--target", required=True, type=_target,
                   help="contrast to synthesise: flair, t2 or t1 (t1c is never synthesised)")
    p.add_argument("-o", "--output", required=True,
                   help="NIfTI file to write, name ending _synthetic (pat_flair_synthetic.nii.gz)")
    p.add_argument("--model", default="auto",
                   help="auto (synth-mri, else histogram), a model id or card, or histogram (baseline)")
    p.add_argument("--json", help="write provenance (with \"synthetic\": true) as JSON here")
    add_device_option(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(func=cmd_synthesize, source_order=None)


def cmd_synthesize(args: argparse.Namespace) -> int:
    """``napari-brain-dl synthesize [--t1 F] [--t1c F] [--t2 F] [--flair F] --target T -o OUT``."""
    from .core.device import choose_device
    from .core.progress import stderr_progress
    from .core.provenance import record_cli_outputs, sidecar_path
    from .core.synthetic import check_synthetic_path, save_synthetic
    from .core.tasks.synthesize import check_target, synthesize

    try:
        check_target(args.target)
        out = check_synthetic_path(args.output)
        if out.exists() and not args.overwrite:
            raise FileExistsError(f"{out} already exists; pass --overwrite to replace it.")
        if not out.parent.resolve().is_dir():
            raise FileNotFoundError(f"The output folder {out.parent} does not exist.")
        if sidecar_path(out).exists() and not args.overwrite:
            raise FileExistsError(f"{sidecar_path(out)} already exists; pass --overwrite to replace it.")
        if args.json and Path(args.json).exists() and not args.overwrite:
            raise FileExistsError(f"{args.json} already exists; pass --overwrite to replace it.")
        order = [d for d in args.source_order or [] if getattr(args, d)]
        if not order:
            raise ValueError("Give at least one acquired contrast (--t1, --t1c, --t2 or --flair).")
        names = dict(FLAGS)
        if args.target in [names[d] for d in order]:
            raise ValueError(
                f"{args.target} is already given (--{args.target.lower()}): there is nothing to synthesise."
            )
        choose_device(args.device)
        sources = {names[d]: load_scan(getattr(args, d)) for d in order}
        result = synthesize(sources, args.target, method=args.model, device=args.device,
                            progress=stderr_progress)
        for note in result.notes:
            sys.stderr.write(note + "\n")
        save_synthetic(result.image, out, overwrite=args.overwrite)
        report = {
            "output": str(out),
            "synthetic": True,
            "description": result.image.meta["description"],
            "target": result.target,
            "sources": result.sources,
            "method": result.method,
            "units": result.provenance.get("units"),
            "output_grid": f"{names[order[0]]} ({getattr(args, order[0])})",
            "notes": result.notes,
            "provenance": result.provenance,
        }
        write_json(args.json, report, args.overwrite)
        record_cli_outputs(args, {"output": str(out), "json": args.json},
                           {d: getattr(args, d) for d in order}, result.provenance,
                           {"synthetic": True, "description": report["description"]})
    except _bad_input_errors() as exc:
        return _fail(_sentence(exc))
    flush_warnings()
    print(f"{out}: {report['description']} (synthetic, not an acquired scan; "
          f"used {', '.join(result.sources)})")
    return 0
