"""`napari-brain-dl`: the headless twin of every dock widget.

Each subcommand calls the same core function its widget calls. Exit codes: 0 done,
1 finished with failed subjects (batch) or differing outputs (rerun), 2 usage error
(argparse), 3 bad input (one sentence on stderr, nothing written), 4 the computation
failed (memory, device, library), 130 interrupted. Outputs are written atomically and
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
    cli_rerun,
    cli_superres,
    cli_synthesize,
    cli_tumor,
)
from .cli_models import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_RUNTIME
from .core import output_rules
from .core.output_rules import output_journal

OUTPUT_DESTS = ("output", "json", "uncertainty", "pdf", "output_dir")  # options naming what a command writes
OUTPUT_FOLDERS = ("output_dir",)
SIDECAR_DESTS = ("output", "uncertainty")  # results that get a provenance sidecar beside them


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


QT_BINDINGS = ("PyQt6", "PySide6", "PyQt5", "PySide2")


def _cmd_demo(args: argparse.Namespace) -> int:
    import importlib.util

    if not any(importlib.util.find_spec(binding) for binding in QT_BINDINGS):
        raise ValueError('The viewer needs a Qt binding and none is installed: '
                         'pip install "napari-brain-dl[qt]".')
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
    cli_rerun.register(sub)
    cli_batch.register(sub)
    return parser


def _add_series_choice(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--volume", type=int, default=None, help="volume index of a 4D file")
    parser.add_argument("--series", default=None, help="series instance UID in a multi-series DICOM folder")


def _paths_in(value: object) -> list[str]:
    """Existing paths in an option value (also ``NAME=FILE`` and lists of them)."""
    if isinstance(value, (list, tuple)):
        return [p for v in value for p in _paths_in(v)]
    if not isinstance(value, (str, Path)) or not str(value):
        return []
    text = str(value)
    candidates = [text, text.split("=", 1)[1]] if "=" in text else [text]
    return [c for c in candidates if c and Path(c).exists()]


def check_outputs_apart(args: argparse.Namespace) -> None:
    """Refuse, before any compute, outputs that are, lie in or contain an input, or repeat.

    Every option that is not an output and names an existing file or folder counts as an input.
    """
    options = {k: v for k, v in vars(args).items() if k not in ("func", "command") and not k.startswith("_")}
    outputs = {k: v for k, v in options.items()
               if k in OUTPUT_DESTS and isinstance(v, (str, Path)) and str(v)}
    inputs = [p for k, v in options.items() if k not in OUTPUT_DESTS for p in _paths_in(v)]
    output_rules.check_outputs_apart(outputs, inputs, folders=OUTPUT_FOLDERS, sidecars=SIDECAR_DESTS)


def check_device(args: argparse.Namespace) -> None:
    """Refuse an accelerator this machine does not have before any input is read."""
    device = getattr(args, "device", None)
    if device not in (None, "auto", "cpu"):
        from .core.device import choose_device

        choose_device(device)


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
    with output_journal() as journal:
        try:
            check_outputs_apart(args)
            check_device(args)
            return int(args.func(args) or 0)
        except (ValueError, OSError) as exc:  # OSError: missing, existing, unwritable, disk full
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except KeyboardInterrupt:  # no result may stay without its provenance sidecar
            print(f"error: interrupted; {_rolled_back(journal)}.", file=sys.stderr)
            return EXIT_INTERRUPTED
        except MemoryError:
            print(f"error: not enough memory for this input; {_rolled_back(journal)}.", file=sys.stderr)
            return EXIT_RUNTIME
        except RuntimeError as exc:  # torch, ITK or another library failed while computing
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            print(f"error: the computation failed ({first}); {_rolled_back(journal)}.", file=sys.stderr)
            return EXIT_RUNTIME


def _rolled_back(journal: output_rules.OutputJournal) -> str:
    """Remove what the failed command wrote so far and say so."""
    removed = journal.roll_back()
    if not removed:
        return "nothing was written"
    return f"the files written so far were removed ({', '.join(map(str, removed))})"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
