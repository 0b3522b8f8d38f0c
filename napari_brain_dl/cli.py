"""`napari-brain-dl`: the headless twin of every dock widget.

Each subcommand calls the same core function its widget calls. Bad input ends
with one sentence on stderr and exit code 2; outputs are written atomically and
never replace an existing file without --overwrite.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import (
    __version__,
    cli_batch,
    cli_explain,
    cli_models,
    cli_report,
    cli_superres,
    cli_synthesize,
    cli_tumor,
)

EXIT_BAD_INPUT = 2


def _cmd_info(args: argparse.Namespace) -> int:
    from .core import io

    volume = io.load(args.path, volume_index=args.volume, series_uid=args.series)
    info = volume.info(include_identifiers=args.include_identifiers)
    info["path"] = str(args.path)
    print(json.dumps(info, indent=2))
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from .core import io
    from .core.provenance import record_cli_outputs, sidecar_path

    volume = io.load(args.input, volume_index=args.volume, series_uid=args.series)
    if sidecar_path(args.output).exists() and not args.overwrite:
        raise FileExistsError(f"{sidecar_path(args.output)} already exists; pass --overwrite to replace it.")
    text = volume.meta.get("header_text", {}) if args.include_identifiers else {}
    description = text.get("descrip") or text.get("series_description")  # else ours (or none)
    out = io.save(volume, args.output, overwrite=args.overwrite, description=description)
    record_cli_outputs(args, {"output": out}, {"input": args.input})
    for warning in volume.warnings:
        print(f"warning: {Path(args.input).name}: {warning}", file=sys.stderr)
    print(f"wrote {out} ({'x'.join(map(str, volume.shape))}, {volume.axcodes}, {volume.data.dtype})")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from ._napari.demo import launch

    launch([str(p) for p in args.paths])
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="napari-brain-dl", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"napari-brain-dl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="print a scan's geometry as JSON")
    info.add_argument("path", type=Path, help="NIfTI/MGZ/NRRD file or DICOM folder")
    _add_series_choice(info)
    add_identifiers_option(info, "print them")
    info.set_defaults(func=_cmd_info)

    convert = sub.add_parser("convert", help="write a scan (or DICOM series) as NIfTI, geometry kept")
    convert.add_argument("input", type=Path)
    convert.add_argument("output", type=Path, help="output .nii.gz / .nii (or .nrrd / .mha)")
    convert.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    _add_series_choice(convert)
    add_identifiers_option(convert, "copy the NIfTI description or DICOM SeriesDescription into the output")
    convert.set_defaults(func=_cmd_convert)

    demo = sub.add_parser("demo", help="open napari with the sample exam (or PATHS) and every dock widget")
    demo.add_argument("paths", nargs="*", type=Path, help="series of one exam (default: the sample exam)")
    demo.set_defaults(func=_cmd_demo)

    cli_models.register(sub)
    cli_tumor.register(sub)
    cli_explain.register(sub)
    cli_synthesize.register(sub)
    cli_superres.register(sub)
    cli_report.register(sub)
    cli_batch.register(sub)
    return parser


def _add_series_choice(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--volume", type=int, default=None, help="volume index of a 4D file")
    parser.add_argument("--series", default=None, help="series instance UID in a multi-series DICOM folder")


def add_identifiers_option(parser: argparse.ArgumentParser, what: str) -> None:
    """`--include-identifiers`: free-text header fields (may name the patient) are dropped unless given."""
    parser.add_argument("--include-identifiers", action="store_true",
                        help="free-text header fields (SeriesDescription, ProtocolName, NIfTI descrip, "
                             f"aux_file) may identify the patient and are left out by default; {what}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `napari-brain-dl` console script."""
    args = build_parser().parse_args(argv)
    args._started = time.time()  # wall-clock start, for the provenance sidecars
    cli_models._PENDING.clear()  # scan warnings of an earlier in-process call
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as exc:  # OSError: missing, existing, unwritable, disk full
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written.", file=sys.stderr)
        return 130
    except MemoryError:
        print("error: not enough memory for this input.", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
