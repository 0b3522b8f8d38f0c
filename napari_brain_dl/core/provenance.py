"""Provenance records, JSON sidecars beside every file written, and re-running from a sidecar.

Sidecar naming: the full output file name plus ``.json`` (``tumor.nii.gz`` ->
``tumor.nii.gz.json``). It never collides with a BIDS sidecar (``tumor.json``) or with the
``--json`` report a command may write next to its output, and it names exactly one file.

A record holds the product version, the command and every option needed to run it again
(paths made absolute), the model (card id, card sha256, weights sha256), the task's own
parameters, the device, each input and output file with its sha256, timings and the
software versions. `rerun` rebuilds the command line from a sidecar alone, checks that the
inputs are unchanged, runs it and compares the new outputs with the recorded sha256.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

SCHEMA = "napari-brain-dl/provenance/1"
SIDECAR_SUFFIX = ".json"
OUTPUT_OPTIONS = ("output", "json", "uncertainty")  # CLI options that name files a command writes
#: Commands whose results carry a sidecar, so `rerun` may run them again (never rerun, batch, ...).
RERUNNABLE = ("convert", "skullstrip", "run", "segment", "click-segment", "explain", "synthesize",
              "super-resolve")
#: Options a sidecar may never set on a re-run: the user's own choices at re-run time.
NOT_REPLAYED = ("overwrite", "scheduler", "include_identifiers")
_HASHES: dict[tuple[str, int, int], str] = {}


def sidecar_path(output: str | os.PathLike[str]) -> Path:
    """Sidecar of `output`: its full file name plus ``.json`` (``OUT.nii.gz`` -> ``OUT.nii.gz.json``)."""
    output = Path(output)
    return output.with_name(output.name + SIDECAR_SUFFIX)


def sha256_file(path: str | os.PathLike[str]) -> str | None:
    """sha256 of a file (of every file, sorted by name, for a folder); None when it does not exist.

    Hashes are cached by (path, size, mtime), so a scan read by many records is hashed once.
    """
    path = Path(path)
    if not path.exists():
        return None
    if not path.is_dir():
        return file_sha256(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path)}:{file_sha256(file)}\n".encode())
    return digest.hexdigest()


def file_sha256(file: Path) -> str:
    """Hex sha256 of one file, cached by (path, size, modification time)."""
    stat = file.stat()
    key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def file_entry(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"path": absolute path, "sha256": ...}`` of one file or folder."""
    return {"path": str(Path(path).resolve()), "sha256": sha256_file(path)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def build_record(
    *,
    command: str,
    options: Mapping[str, Any],
    inputs: Mapping[str, str | os.PathLike[str] | None],
    outputs: Mapping[str, str | os.PathLike[str]],
    result: Mapping[str, Any] | None = None,
    started: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One provenance record for a run that wrote `outputs`.

    Args:
        command: Subcommand that produced the outputs ("segment", "skullstrip", ...).
        options: Every option of the command (argparse dest -> value), paths absolute.
        inputs: Input role -> file (None for a contrast not given); each is hashed.
        outputs: Output role -> file written; each is hashed.
        result: The task's own provenance (model id, weights sha256, parameters, device, seconds).
        started: ``time.time()`` when the run began (gives the wall-clock seconds).
        extra: More JSON-ready facts (e.g. a heatmap's check verdicts).

    Example:
        >>> rec = build_record(command="segment", options={"flair": "/d/f.nii.gz"},  # doctest: +SKIP
        ...                    inputs={"flair": "/d/f.nii.gz"}, outputs={"output": "/o/t.nii.gz"})
        >>> rec["inputs"]["flair"]["sha256"][:8]  # doctest: +SKIP
    """
    from .. import __version__

    result = dict(result or {})
    now = time.time()
    card_path = result.get("card_path")
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "product": {"name": "napari-brain-dl", "version": __version__},
        "command": command,
        "options": _jsonable(dict(options)),
        "model": {
            "id": result.get("model_id"),
            "name": result.get("model_name"),
            "card_path": card_path,
            "card_sha256": sha256_file(card_path) if card_path else None,
            "weights_sha256": result.get("weights_sha256"),
        },
        "parameters": _jsonable(result.get("parameters", {})),
        "device": result.get("device"),
        "inputs": {role: file_entry(p) if p else None for role, p in inputs.items()},
        "outputs": {role: file_entry(p) for role, p in outputs.items()},
        "timings": {
            "model_seconds": result.get("seconds"),
            "wall_seconds": round(now - started, 3) if started else None,
            "finished": _dt.datetime.fromtimestamp(now, _dt.timezone.utc).isoformat(timespec="seconds"),
        },
        "environment": _environment(),
        "result": _jsonable(result),
    }
    if extra:
        record.update(_jsonable(dict(extra)))
    return record


def _environment() -> dict[str, Any]:
    env = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("numpy", "torch", "nibabel", "monai", "SimpleITK"):
        module = sys.modules.get(name)
        if module is not None:
            env[name] = str(getattr(module, "__version__", "") or "")
    return env


def write_sidecar(
    output: str | os.PathLike[str],
    record: Mapping[str, Any],
    *,
    overwrite: bool = False,
    recorded_as: str | os.PathLike[str] | None = None,
) -> Path:
    """Write `record` atomically as the sidecar of `output` and return its path.

    `recorded_as` is the path the record names for `output` when the file is about to move
    (a batch writes into a partial folder renamed when complete).

    Raises:
        FileExistsError: The sidecar exists and `overwrite` is False (never replaced silently).

    Example:
        >>> write_sidecar("tumor.nii.gz", rec)  # doctest: +SKIP
        PosixPath('tumor.nii.gz.json')
    """
    from .io import atomic_output

    target = sidecar_path(output)
    body = dict(record)
    body["output"] = {**file_entry(output), **({"path": str(recorded_as)} if recorded_as else {})}
    with atomic_output(target, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(body, indent=2, default=str), encoding="utf-8")
    return target


def read_sidecar(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a sidecar; `path` may be the sidecar or the output it describes.

    Raises:
        FileNotFoundError: No sidecar there.
        ValueError: Not a napari-brain-dl provenance record.
    """
    path = Path(path)
    if not path.name.endswith(SIDECAR_SUFFIX):
        path = sidecar_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist.")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}).") from exc
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not a napari-brain-dl provenance sidecar (no schema {SCHEMA!r}).")
    return record


# -- the command line ----------------------------------------------------------------------------------
def absolute_paths(value: Any) -> Any:
    """`value` with every existing path (str or Path, also inside lists and dicts) made absolute."""
    if isinstance(value, Path) or (isinstance(value, str) and value and os.path.exists(value)):
        return str(Path(value).resolve())
    if isinstance(value, (list, tuple)):
        return [absolute_paths(v) for v in value]
    if isinstance(value, Mapping):
        return {k: absolute_paths(v) for k, v in value.items()}
    return value


def cli_options(args: argparse.Namespace, outputs: Iterable[str]) -> dict[str, Any]:
    """The options of a parsed command, existing paths and the named output options absolute."""
    skip = {"func", "command"}
    options = {k: v for k, v in vars(args).items() if k not in skip and not k.startswith("_")}
    for key, value in options.items():
        options[key] = (
            str(Path(value).resolve()) if key in outputs and isinstance(value, str) else absolute_paths(value)
        )
    return options


def record_cli_outputs(
    args: argparse.Namespace,
    outputs: Mapping[str, str | os.PathLike[str] | None],
    inputs: Mapping[str, str | os.PathLike[str] | None],
    result: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write one sidecar beside every image a CLI command wrote (the headless entry point).

    Args:
        args: The parsed arguments (``args.command`` names the subcommand).
        outputs: Option dest -> file written (None when that output was not asked for). Files
            ending in ``.json`` (reports that embed provenance) are listed but get no sidecar.
        inputs: Input role -> file.
        result: The task's provenance.
        extra: More facts for the record (e.g. check verdicts).
    """
    written = {k: v for k, v in outputs.items() if v}
    names = vars(args)
    output_options = sorted({k for k in (*written, *OUTPUT_OPTIONS) if isinstance(names.get(k), str)})
    record = build_record(
        command=str(args.command),
        options=cli_options(args, output_options),
        inputs=inputs,
        outputs=written,
        result=result,
        started=getattr(args, "_started", None),
        extra={"output_options": output_options, **(extra or {})},
    )
    overwrite = bool(getattr(args, "overwrite", False))
    images = [Path(p) for p in written.values() if not str(p).endswith(".json")]
    sidecars: list[Path] = []
    try:
        for path in images:
            sidecars.append(write_sidecar(path, record, overwrite=overwrite))
    except OSError:  # no result without its provenance: remove what this run wrote
        for path in [*(Path(p) for p in written.values()), *sidecars]:
            path.unlink(missing_ok=True)
        raise
    return sidecars


def argv_from_record(
    record: Mapping[str, Any], output_dir: str | os.PathLike[str] | None = None
) -> list[str]:
    """The command line a sidecar describes, outputs moved into `output_dir` when given.

    Tokens are generated from the live parser of the command, so option spellings, flags and
    repeated options come out exactly as the parser expects.
    """
    from ..cli import build_parser

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
    from ..cli import main

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
    from . import io

    try:
        va, vb = io.load(a), io.load(b)
    except (OSError, ValueError):
        return None
    import numpy as np

    return bool(va.same_grid(vb, atol=1e-6) and np.array_equal(np.asarray(va.data), np.asarray(vb.data)))


def _accepts_overwrite(command: str) -> bool:
    from ..cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return any("--overwrite" in a.option_strings for a in sub.choices[command]._actions)
