"""Command-line subcommand ``rerun``: a result again from its provenance sidecar alone.

The sidecar is untrusted input: `check_rerunnable` validates its shape, only commands that
write sidecars are replayed, options the user decides at re-run time (``--overwrite``, a Dask
scheduler, identifiers) are never taken from it, and the replayed command goes through `cli.main`
with the same output rules as a fresh run. Exit code 1 when an output differs from the record.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .cli_models import _bad_input_errors, _fail, _sentence
from .core.provenance import OUTPUT_OPTIONS, read_sidecar, sha256_file

#: Commands whose results carry a sidecar, so `rerun` may run them again (never rerun, batch, ...).
RERUNNABLE = ("convert", "skullstrip", "run", "segment", "click-segment", "explain", "synthesize",
              "super-resolve")
#: Options a sidecar may never set on a re-run: the user's own choices at re-run time.
NOT_REPLAYED = ("overwrite", "scheduler", "include_identifiers")


def register(subparsers: Any) -> None:
    """Add ``rerun`` to an argparse ``add_subparsers()`` object."""
    rer = subparsers.add_parser("rerun", help="run a result again from its provenance sidecar alone")
    rer.add_argument("sidecar", help="OUT.nii.gz.json (or the output file it describes)")
    rer.add_argument("--output-dir", help="write the new outputs here (default: replace the originals)")
    rer.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    rer.add_argument("--allow-changed-inputs", action="store_true", help="run even if an input changed")
    rer.set_defaults(func=cmd_rerun)


def cmd_rerun(args: argparse.Namespace) -> int:
    """``napari-brain-dl rerun SIDECAR [--output-dir DIR] [--overwrite]``."""
    try:
        result = rerun(args.sidecar, args.output_dir, overwrite=args.overwrite,
                       allow_changed_inputs=args.allow_changed_inputs)
    except _bad_input_errors() as exc:
        return _fail(_sentence(exc))
    if result["exit_code"] != 0:
        return int(result["exit_code"])
    differ = 0
    for role, out in result["outputs"].items():
        state = ("identical (sha256)" if out["identical"] else
                 "voxel-identical" if out["voxel_identical"] else "DIFFERS from the recorded output")
        differ += not (out["identical"] or out["voxel_identical"] or role == "json")
        print(f"{out['path']}: {state}")
    return 1 if differ else 0


def argv_from_record(
    record: Mapping[str, Any], output_dir: str | os.PathLike[str] | None = None
) -> list[str]:
    """The command line a sidecar describes, outputs moved into `output_dir` when given.

    Tokens are generated from the live parser of the command, so option spellings, flags and
    repeated options come out exactly as the parser expects.
    """
    from .cli import build_parser

    command = str(record["command"])
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if command not in sub.choices or command not in RERUNNABLE:
        raise ValueError(f"This version of napari-brain-dl has no command {command!r} to re-run.")
    options = {k: v for k, v in record["options"].items() if k not in NOT_REPLAYED}
    for key in record.get("output_options", []):
        if output_dir is not None and options.get(key):
            options[key] = str(Path(output_dir) / Path(options[key]).name)
    argv = [command]
    positionals: list[str] = []
    for action in sub.choices[command]._actions:
        if action.dest in ("help", "func") or action.dest not in options:
            continue
        value = options[action.dest]
        if not action.option_strings:
            positionals.append(_token(value))
        elif isinstance(action, argparse._StoreTrueAction):
            argv += [action.option_strings[0]] if value else []
        elif isinstance(action, argparse._AppendAction):
            for item in value or []:
                argv += [action.option_strings[-1], _token(item)]
        elif value is not None:
            argv += [action.option_strings[-1], _token(value)]
    return argv + positionals


def _token(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def rerun(
    sidecar: str | os.PathLike[str],
    output_dir: str | os.PathLike[str] | None = None,
    *,
    overwrite: bool = False,
    allow_changed_inputs: bool = False,
) -> dict[str, Any]:
    """Run the command a sidecar records again and compare its outputs with the recorded ones.

    Args:
        sidecar: The sidecar (or the output file it describes).
        output_dir: Where the new outputs go (same file names); default: the original paths,
            which then need `overwrite`.
        overwrite: Replace existing outputs (and their sidecars).
        allow_changed_inputs: Run even when an input's sha256 differs from the record.

    Returns:
        ``{"exit_code", "argv", "outputs": {role: {"path", "sha256", "recorded_sha256",
        "identical"}}}``.

    Raises:
        ValueError: An input changed (or vanished) since the record, or the record is unusable.

    Example:
        >>> rerun("out/tumor.nii.gz.json", "rerun/")["outputs"]["output"]["identical"]  # doctest: +SKIP
        True
    """
    from .cli import main

    record = read_sidecar(sidecar)
    check_rerunnable(record)
    if output_dir is None:  # in place: only beside the sidecar, whatever paths the record names
        home = Path(sidecar).resolve().parent
        for key in record.get("output_options", []):
            target = record["options"].get(key)
            if isinstance(target, str) and Path(target).resolve().parent != home:
                raise ValueError(f"The sidecar names an output outside its own folder ({target}); "
                                 "pass --output-dir to re-run it.")
    for role, entry in (record.get("inputs") or {}).items():
        if not entry:
            continue
        now = sha256_file(entry["path"])
        if now != entry.get("sha256") and not allow_changed_inputs:
            state = "is missing" if now is None else "has changed since the recorded run"
            raise ValueError(f"Input {role} ({entry['path']}) {state}; the result cannot be reproduced.")
    if output_dir is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
    argv = argv_from_record(record, output_dir)
    if overwrite and "--overwrite" not in argv and _accepts_overwrite(record["command"]):
        argv.append("--overwrite")
    code = main(argv)
    report: dict[str, Any] = {"exit_code": code, "argv": argv, "outputs": {}}
    for role, entry in record.get("outputs", {}).items():
        path = Path(output_dir) / Path(entry["path"]).name if output_dir is not None else Path(entry["path"])
        new = sha256_file(path)
        same = new is not None and new == entry.get("sha256")
        report["outputs"][role] = {
            "path": str(path),
            "sha256": new,
            "recorded_sha256": entry.get("sha256"),
            "identical": same,
            "voxel_identical": same or _same_voxels(path, Path(entry["path"])),
        }
    return report


def check_rerunnable(record: Mapping[str, Any]) -> None:
    """Raise `ValueError` unless `record` has the shape `rerun` needs (a sidecar is untrusted input).

    The command must be one that writes sidecars; options are plain values (text, numbers,
    flags, lists of them); inputs and outputs map roles to ``{"path", "sha256"}`` entries, and
    at least one input is recorded (a result without inputs cannot be reproduced).
    """
    command = record.get("command")
    if not isinstance(command, str) or command not in RERUNNABLE:
        raise ValueError(f"The sidecar records the command {command!r}, which rerun does not run "
                         f"(only {', '.join(RERUNNABLE)}).")
    options, inputs, outputs = record.get("options"), record.get("inputs"), record.get("outputs")
    plain = (str, int, float, bool, type(None))

    def is_plain(v: Any) -> bool:
        return isinstance(v, plain) or (isinstance(v, list) and all(isinstance(i, plain) for i in v))

    if not isinstance(options, dict) or not all(isinstance(k, str) and is_plain(v)
                                                for k, v in options.items()):
        raise ValueError("The sidecar's options are not plain values; it was not written by napari-brain-dl.")
    for what, entries in (("inputs", inputs), ("outputs", outputs)):
        if not isinstance(entries, dict) or not all(
            e is None or (isinstance(e, dict) and isinstance(e.get("path"), str)
                          and isinstance(e.get("sha256"), (str, type(None))))
            for e in entries.values()
        ):
            raise ValueError(f"The sidecar's {what} are not file entries; not written by napari-brain-dl.")
    if not any(inputs.values()):
        raise ValueError("The sidecar records no input files; its result cannot be reproduced.")
    names = record.get("output_options", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n in OUTPUT_OPTIONS for n in names):
        raise ValueError("The sidecar's output options are not known output options.")


def _same_voxels(a: Path, b: Path) -> bool | None:
    """True when two images hold the same voxels on the same grid (None when not comparable)."""
    if not (a.is_file() and b.is_file()) or a.resolve() == b.resolve() or a.suffix == ".json":
        return None
    from .core import io

    try:
        va, vb = io.load(a), io.load(b)
    except (OSError, ValueError):
        return None
    import numpy as np

    return bool(va.same_grid(vb, atol=1e-6) and np.array_equal(np.asarray(va.data), np.asarray(vb.data)))


def _accepts_overwrite(command: str) -> bool:
    from .cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return any("--overwrite" in a.option_strings for a in sub.choices[command]._actions)
