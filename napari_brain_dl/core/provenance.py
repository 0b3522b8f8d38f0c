"""Provenance records, JSON sidecars beside every file written, and re-running from a sidecar.

Sidecar naming: the full output file name plus ``.json`` (``tumor.nii.gz`` ->
``tumor.nii.gz.json``). It never collides with a BIDS sidecar (``tumor.json``) or with the
``--json`` report a command may write next to its output, and it names exactly one file.

A record holds the product version, the command and every option needed to run it again
(paths made absolute), the model (card id, card sha256, weights sha256), the task's own
parameters, the device, each input and output file with its sha256, timings and the
software versions. Jobs (`core.jobs`) write these records; `core.jobs.rerun` rebuilds a job
from one.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict

from .. import __version__
from .hashing import file_sha256, sha256_file  # noqa: F401  (sha256_file: part of this module's API)

SCHEMA = "napari-brain-dl/provenance/1"
SIDECAR_SUFFIX = ".json"


class FileEntry(TypedDict):
    """One input or output file of a run."""

    path: str
    sha256: str | None


class ProvenanceRecord(TypedDict, total=False):
    """A sidecar's content (`build_record`); ``output`` is added by `write_sidecar`, and a job may add
    its own facts (``measurements``, ``explanation``, ``synthetic``, ``batch``, ``output_options``)."""

    schema: str
    product: dict[str, str]
    command: str
    options: dict[str, Any]
    model: dict[str, Any]
    parameters: dict[str, Any]
    device: str | None
    inputs: dict[str, FileEntry | None]
    outputs: dict[str, FileEntry]
    timings: dict[str, Any]
    environment: dict[str, str]
    result: dict[str, Any]
    output: FileEntry
    output_options: list[str]


def sidecar_path(output: str | os.PathLike[str]) -> Path:
    """Sidecar of `output`: its full file name plus ``.json`` (``OUT.nii.gz`` -> ``OUT.nii.gz.json``)."""
    output = Path(output)
    return output.with_name(output.name + SIDECAR_SUFFIX)


def file_entry(path: str | os.PathLike[str]) -> FileEntry:
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
) -> ProvenanceRecord:
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

    result = dict(result or {})
    now = time.time()
    card_path = result.get("card_path")
    record: ProvenanceRecord = {
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
        record.update(_jsonable(dict(extra)))  # type: ignore[typeddict-item]
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


def read_sidecar(path: str | os.PathLike[str]) -> ProvenanceRecord:
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


def absolute_paths(value: Any) -> Any:
    """`value` with every existing path (str or Path, also inside lists and dicts) made absolute."""
    if isinstance(value, Path) or (isinstance(value, str) and value and os.path.exists(value)):
        return str(Path(value).resolve())
    if isinstance(value, (list, tuple)):
        return [absolute_paths(v) for v in value]
    if isinstance(value, Mapping):
        return {k: absolute_paths(v) for k, v in value.items()}
    return value
