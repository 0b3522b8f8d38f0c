"""A job: one task's options as a frozen dataclass, run into files, a provenance record and a summary.

The fields of a job class are the task's options, declared once: the command line builds its
parser from them (`cli._common.add_job_parser`), `batch` builds the same job per subject and
`rerun` rebuilds it from a sidecar's ``options``. Running a job checks its outputs, resolves
the device once, loads its inputs, calls the task's core function, writes every result
atomically with a provenance sidecar beside each image, and returns a `JobResult`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .. import output_rules, provenance
from ..device_names import DEVICES
from ..errors import InputError
from ..progress import CancelToken, ProgressCallback
from ..provenance import ProvenanceRecord, absolute_paths, build_record, sidecar_path

if TYPE_CHECKING:
    import torch

    from ..volume import Volume

Notify = Callable[[str], None]


def option(*flags: str, default: Any = dataclasses.MISSING, help: str, output: bool = False,
           parse: Callable[[str], Any] | None = None, ordered: bool = False, **parser: Any) -> Any:
    """A job field that is also a command-line option.

    Args:
        flags: Option strings (``"-o", "--output"``); none for a positional argument.
        default: The option's default (omit for a required option or a positional argument).
        help: The option's help text.
        output: The option names a file the job writes (checked apart from the inputs; the
            record names it absolute; `rerun --output-dir` moves it).
        parse: Turns the text typed into the value (raises `ValueError` with a sentence).
        ordered: The command line remembers the order such options were given in the job's
            ``source_order`` field.
        parser: More ``argparse.add_argument`` keywords (``action``, ``choices``, ``metavar``).
    """
    metadata = {"cli": True, "flags": flags, "help": help, "output": output, "parse": parse,
                "ordered": ordered, "parser": parser}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def not_an_option(default: Any = None) -> Any:
    """A job field the command line sets itself (never typed by the user)."""
    return field(default=default, metadata={"cli": False})


def device_option(default: str = "auto") -> Any:
    """``--device``: ``auto | cpu | cuda[:N] | mps``, resolved once when the job runs."""
    return option("--device", default=default, help=f"auto | cpu | cuda[:N] | mps (default {default})",
                  parse=device_name)


def device_name(text: str) -> str:
    """A device name a user may give (``cuda:N`` too); its availability is checked when the job runs."""
    name = text.strip().lower()
    base, _, index = name.partition(":")
    if base not in DEVICES or (index and not (base == "cuda" and index.isdigit())):
        raise ValueError(f"invalid device {text!r}: choose auto, cpu, cuda, cuda:N or mps")
    return name


def overwrite_option() -> Any:
    """``--overwrite``: replace existing outputs (and their sidecars); never taken from a sidecar."""
    return option("--overwrite", default=False, help="replace existing outputs", action="store_true")


@dataclass(frozen=True)
class JobResult:
    """What a job wrote and what it found.

    Attributes:
        files: Output option -> file written (images and JSON reports).
        record: The provenance record written beside every image (None when no image was written).
        summary: Lines for the user (the CLI prints them on stdout).
        warnings: Scan warnings and notes, reported only because the job succeeded.
        values: The task's numbers (measurements, probabilities) for batch tables and reports.
    """

    files: dict[str, Path] = field(default_factory=dict)
    record: ProvenanceRecord | None = None
    summary: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)


class JobContext:
    """What one run of a job shares: the resolved device, callbacks, collected warnings.

    `land_in` names the folder the outputs will be moved to once complete (a batch writes
    into a partial folder); the provenance record names outputs there and holds `record_extra`.
    """

    def __init__(self, job: Job, progress: ProgressCallback | None, notify: Notify | None,
                 cancel: CancelToken | None, land_in: Path | None, record_extra: Mapping[str, Any]) -> None:
        self.job, self.progress, self.cancel, self.land_in = job, progress, cancel, land_in
        self.record_extra = dict(record_extra)
        self.notify: Notify = notify or (lambda text: None)
        self.started = time.time()
        self.warnings: list[str] = []
        self._device: torch.device | None = None

    @property
    def device(self) -> torch.device:
        """The job's ``device`` option as an available `torch.device` (resolved once)."""
        if self._device is None:
            from ..device import choose_device

            self._device = choose_device(getattr(self.job, "device", "auto"))
        return self._device

    def load(self, path: str | os.PathLike[str], **kwargs: Any) -> Volume:
        """`io.load`, keeping the scan's warnings (NaN voxels, qform/sform conflict) for the result."""
        from .. import io

        volume = io.load(path, **kwargs)
        self.warnings += [f"{Path(path).name}: {w}" for w in volume.warnings]
        return volume

    def check_outputs(self, *images: str | os.PathLike[str] | None,
                      json: str | os.PathLike[str] | None = None) -> None:
        """Refuse, before any compute, an output that exists without ``overwrite`` (an image's
        sidecar too), an image suffix we cannot write, or a folder that is missing or not writable."""
        from ..io import WRITE_SUFFIXES, suffix_of

        overwrite = bool(getattr(self.job, "overwrite", False))
        outputs = [(Path(p), True) for p in images if p] + ([(Path(json), False)] if json else [])
        for path, image in outputs:
            if image and suffix_of(path) not in WRITE_SUFFIXES:
                raise InputError(f"Cannot write {path.name}: use one of {', '.join(WRITE_SUFFIXES)}.")
            for existing in (path, sidecar_path(path)) if image else (path,):
                if existing.exists() and not overwrite:
                    raise FileExistsError(f"{existing} already exists; pass --overwrite to replace it.")
            if not path.parent.resolve().is_dir():
                raise FileNotFoundError(f"The output folder {path.parent} does not exist.")
            if not os.access(path.parent.resolve(), os.W_OK):
                raise PermissionError(f"The output folder {path.parent} is not writable; nothing was run.")

    def write_json(self, path: str | os.PathLike[str] | None, report: Mapping[str, Any]) -> None:
        """Write `report` as indented JSON to `path` atomically (nothing when `path` is None)."""
        from ..io import atomic_output

        if path:
            with atomic_output(path, overwrite=bool(getattr(self.job, "overwrite", False))) as tmp:
                tmp.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")

    def recorded(self, path: str | os.PathLike[str]) -> str:
        """The absolute path a record names for an output (in `land_in` when the job has one)."""
        path = Path(path)
        return str(self.land_in / path.name) if self.land_in else str(path.resolve())

    def record(self, outputs: Mapping[str, str | os.PathLike[str] | None],
               inputs: Mapping[str, str | os.PathLike[str] | None],
               result: Mapping[str, Any] | None = None, **extra: Any) -> ProvenanceRecord:
        """Write one provenance sidecar beside every image in `outputs` and return the record.

        Args:
            outputs: Output option -> file written (None when not asked for). JSON reports are
                listed but get no sidecar (they embed the provenance).
            inputs: Input role -> file (None for one not given); each is hashed.
            result: The task's own provenance (model, weights sha256, parameters, device).
            extra: More facts for the record (measurements, check verdicts, ``batch=True``).
        """
        job = self.job
        written = {k: Path(v) for k, v in outputs.items() if v}
        names = job.output_names()
        options = {k: (self.recorded(v) if k in names and v else absolute_paths(v))
                   for k, v in job.options().items()}
        record = build_record(command=job.command, options=options, inputs=inputs, outputs=written,
                              result=result, started=self.started,
                              extra={"output_options": sorted(k for k in names if options.get(k)),
                                     **self.record_extra, **extra})
        for role, path in written.items():
            record["outputs"][role]["path"] = self.recorded(path)
        overwrite = bool(getattr(job, "overwrite", False))
        sidecars: list[Path] = []
        try:
            for path in (p for p in written.values() if not p.name.endswith(".json")):
                recorded = self.land_in / path.name if self.land_in else None
                sidecars.append(provenance.write_sidecar(path, record, overwrite=overwrite,
                                                         recorded_as=recorded))
        except OSError:  # no result without its provenance: remove what this run wrote
            for path in [*written.values(), *sidecars]:
                path.unlink(missing_ok=True)
            raise
        return record


@dataclass(frozen=True, kw_only=True)
class Job:
    """Base of every job: subclasses declare their options as fields and implement `_run`."""

    command: ClassVar[str]  # the CLI subcommand, also the record's "command"
    help: ClassVar[str]  # one line for ``napari-brain-dl --help``

    def run(self, *, progress: ProgressCallback | None = None, notify: Notify | None = None,
            cancel: CancelToken | None = None, land_in: Path | None = None,
            record_extra: Mapping[str, Any] | None = None) -> JobResult:
        """Check the outputs against the inputs, then run the task and write its results.

        Args:
            progress, notify, cancel: As for the task's core function.
            land_in: The folder the outputs move to once complete (records name them there).
            record_extra: More facts for the provenance record (``{"batch": True}``).

        Raises:
            InputError (a ValueError) or OSError: Bad input; nothing was written.
        """
        self.check_outputs_apart()
        return self._run(JobContext(self, progress, notify, cancel, land_in, record_extra or {}))

    def _run(self, ctx: JobContext) -> JobResult:
        raise NotImplementedError

    # -- options ---------------------------------------------------------------------------------------
    def options(self) -> dict[str, Any]:
        """Option name -> value (the fields), as a record stores them."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def output_names(cls) -> tuple[str, ...]:
        """The options that name files this job writes."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("output"))

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Job:
        """The job a record's ``options`` describe (unknown options are refused by name).

        Example:
            >>> SegmentJob.from_options({"flair": "f.nii.gz", "output": "t.nii.gz"})  # doctest: +SKIP
        """
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise InputError(f"The {cls.command} command has no option {', '.join(map(repr, unknown))}.")
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}
        missing = [n for n, f in known.items() if n not in values and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise InputError(f"The {cls.command} command needs {', '.join(missing)}.")
        return cls(**values)

    def check_outputs_apart(self) -> None:
        """Refuse outputs that are, lie in or contain an input, or repeat (before any compute).

        Every option that is not an output and names an existing file or folder is an input.
        """
        outputs = {k: v for k in self.output_names() if (v := getattr(self, k)) and isinstance(v, str | Path)}
        inputs = [p for k, v in self.options().items() if k not in outputs for p in existing_paths(v)]
        output_rules.check_outputs_apart(outputs, inputs, sidecars=[k for k in outputs if k != "json"])


def existing_paths(value: object) -> list[str]:
    """Existing paths in an option value (also ``NAME=FILE`` and lists of them)."""
    if isinstance(value, list | tuple):
        return [p for v in value for p in existing_paths(v)]
    if not isinstance(value, str | Path) or not str(value):
        return []
    text = str(value)
    candidates = [text, text.split("=", 1)[1]] if "=" in text else [text]
    return [c for c in candidates if c and Path(c).exists()]
