"""A result again from its provenance sidecar alone: the job rebuilt from the record's options.

The sidecar is untrusted input: `check_rerunnable` validates its shape, only jobs that write
sidecars are rebuilt (never rerun, batch, report), options the user decides at re-run time
(``overwrite``, a Dask scheduler, identifiers) are never taken from it, and the rebuilt job
runs through the same checks as a fresh one (outputs apart from inputs, never replaced
without ``overwrite``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..hashing import sha256_file
from ..progress import CancelToken, ProgressCallback
from ..provenance import read_sidecar
from .base import Job, Notify
from .registry import RERUNNABLE

#: Options a sidecar may never set on a re-run: the user's own choices at re-run time.
NOT_REPLAYED = ("overwrite", "scheduler", "include_identifiers")
#: Output options a record may name (checked: a sidecar is untrusted).
OUTPUT_OPTIONS = ("output", "json", "uncertainty")


def job_from_record(record: Mapping[str, Any], output_dir: str | os.PathLike[str] | None = None,
                    *, overwrite: bool = False) -> Job:
    """The job a sidecar records, its outputs moved into `output_dir` when given.

    Raises:
        InputError: The record names a command or option this version does not have.
    """
    job_class = RERUNNABLE.get(str(record.get("command")))
    if job_class is None:
        raise InputError(f"This version of napari-brain-dl has no command {record.get('command')!r} "
                         "to re-run.")
    options = {k: v for k, v in record["options"].items() if k not in NOT_REPLAYED}
    for key in job_class.output_names():  # the job's own output options, not the record's word
        if output_dir is not None and options.get(key):
            options[key] = str(Path(output_dir) / Path(options[key]).name)
    if "overwrite" in {f.name for f in dataclasses.fields(job_class)}:
        options["overwrite"] = overwrite
    return job_class.from_options(options)


def rerun(
    sidecar: str | os.PathLike[str],
    output_dir: str | os.PathLike[str] | None = None,
    *,
    overwrite: bool = False,
    allow_changed_inputs: bool = False,
    progress: ProgressCallback | None = None,
    notify: Notify | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Run the job a sidecar records again and compare its outputs with the recorded ones.

    Args:
        sidecar: The sidecar (or the output file it describes).
        output_dir: Where the new outputs go (same file names); default: the original paths,
            which then need `overwrite`.
        overwrite: Replace existing outputs (and their sidecars).
        allow_changed_inputs: Run even when an input's sha256 differs from the record.

    Returns:
        ``{"exit_code": 0, "job": the job, "result": its JobResult, "outputs": {role: {"path",
        "sha256", "recorded_sha256", "identical", "voxel_identical"}}}``.

    Raises:
        InputError: An input changed (or vanished) since the record, or the record is unusable.

    Example:
        >>> rerun("out/tumor.nii.gz.json", "rerun/")["outputs"]["output"]["identical"]  # doctest: +SKIP
        True
    """
    record = read_sidecar(sidecar)
    check_rerunnable(record)
    if output_dir is None:  # in place: only beside the sidecar, whatever paths the record names
        home = Path(sidecar).resolve().parent
        for key in record.get("output_options", []):
            target = record["options"].get(key)
            if isinstance(target, str) and Path(target).resolve().parent != home:
                raise InputError(f"The sidecar names an output outside its own folder ({target}); "
                                 "pass --output-dir to re-run it.")
    for role, entry in (record.get("inputs") or {}).items():
        if not entry:
            continue
        now = sha256_file(entry["path"])
        if now != entry.get("sha256") and not allow_changed_inputs:
            state = "is missing" if now is None else "has changed since the recorded run"
            raise InputError(f"Input {role} ({entry['path']}) {state}; the result cannot be reproduced.")
    job = job_from_record(record, output_dir, overwrite=overwrite)
    if output_dir is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
    result = job.run(progress=progress, notify=notify, cancel=cancel)
    report: dict[str, Any] = {"exit_code": 0, "job": job, "result": result, "outputs": {}}
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
    """Raise `InputError` unless `record` has the shape `rerun` needs (a sidecar is untrusted input).

    The command must be one that writes sidecars; options are plain values (text, numbers,
    flags, lists of them); inputs and outputs map roles to ``{"path", "sha256"}`` entries, and
    at least one input is recorded (a result without inputs cannot be reproduced).
    """
    command = record.get("command")
    if not isinstance(command, str) or command not in RERUNNABLE:
        raise InputError(f"The sidecar records the command {command!r}, which rerun does not run "
                         f"(only {', '.join(RERUNNABLE)}).")
    options, inputs, outputs = record.get("options"), record.get("inputs"), record.get("outputs")
    plain = (str, int, float, bool, type(None))

    def is_plain(v: Any) -> bool:
        return isinstance(v, plain) or (isinstance(v, list) and all(is_plain(i) for i in v))

    if not isinstance(options, dict) or not all(isinstance(k, str) and is_plain(v)
                                                for k, v in options.items()):
        raise InputError("The sidecar's options are not plain values; it was not written by napari-brain-dl.")
    for what, entries in (("inputs", inputs), ("outputs", outputs)):
        if not isinstance(entries, dict) or not all(
            e is None or (isinstance(e, dict) and isinstance(e.get("path"), str)
                          and isinstance(e.get("sha256"), (str, type(None))))
            for e in entries.values()
        ):
            raise InputError(f"The sidecar's {what} are not file entries; not written by napari-brain-dl.")
    if not any(inputs.values()):
        raise InputError("The sidecar records no input files; its result cannot be reproduced.")
    names = record.get("output_options", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n in OUTPUT_OPTIONS for n in names):
        raise InputError("The sidecar's output options are not known output options.")


def _same_voxels(a: Path, b: Path) -> bool | None:
    """True when two images hold the same voxels on the same grid (None when not comparable)."""
    if not (a.is_file() and b.is_file()) or a.resolve() == b.resolve() or a.suffix == ".json":
        return None

    from .. import io

    try:
        va, vb = io.load(a), io.load(b)
    except (OSError, ValueError):
        return None
    return bool(va.same_grid(vb, atol=1e-6) and np.array_equal(np.asarray(va.data), np.asarray(vb.data)))
