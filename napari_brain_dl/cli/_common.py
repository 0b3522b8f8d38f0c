"""What every subcommand shares: exit codes, the parser of a job, running it and printing its result."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..core import output_rules, progress
from ..core.jobs import Job, JobResult
from ..core.jobs.base import device_name, existing_paths

EXIT_SOME_FAILED = 1  # finished, but a subject failed (batch) or a re-run output differs (rerun)
EXIT_USAGE = 2  # argparse: unknown option, missing argument, invalid choice or device name
EXIT_BAD_INPUT = 3  # a file, model or option value refused: one sentence, nothing written
EXIT_RUNTIME = 4  # the computation failed (out of memory, a device or library error)
EXIT_INTERRUPTED = 130  # Ctrl-C: what was written so far is removed

Subparsers = Any  # argparse's private _SubParsersAction: what ``add_subparsers()`` returns


def add_job_parser(subparsers: Subparsers, job: type[Job]) -> argparse.ArgumentParser:
    """The subcommand of `job`, its options built from the job's fields (declared there only)."""
    description = (job.__doc__ or "").split("\n\n")[0]
    parser = subparsers.add_parser(job.command, help=job.help, description=description)
    add_job_options(parser, job)
    parser.set_defaults(func=run_job, job_class=job)
    return parser


def add_job_options(parser: argparse.ArgumentParser, job: type[Job],
                    names: Sequence[str] | None = None) -> None:
    """Add `job`'s fields (or those in `names`) to `parser` as options and positional arguments."""
    for field in dataclasses.fields(job):
        meta = field.metadata
        if names is not None and field.name not in names:
            continue
        if not meta.get("cli"):
            parser.set_defaults(**{field.name: field.default})  # set by the command line itself
            continue
        kwargs: dict[str, Any] = {"help": meta["help"], **meta["parser"]}
        if meta["parse"] is not None:
            kwargs["type"] = meta["parse"] if meta["parse"] in (int, float) else _argparse_type(meta["parse"])
        if meta["ordered"]:
            kwargs["action"] = _Ordered
        if not meta["flags"]:
            parser.add_argument(field.name, **kwargs)
            continue
        if field.default is not dataclasses.MISSING:
            kwargs["default"] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            kwargs["default"] = field.default_factory()
        else:
            kwargs["required"] = True
        parser.add_argument(*meta["flags"], dest=field.name, **kwargs)


def _argparse_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:  # argparse prints this sentence after the option's name
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


class _Ordered(argparse.Action):
    """Store the value and remember the order in which such options were given (``source_order``)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        order = [d for d in getattr(namespace, "source_order", None) or [] if d != self.dest]
        namespace.source_order = [*order, self.dest]


def job_from_args(args: argparse.Namespace) -> Job:
    """The job a parsed subcommand describes."""
    job: type[Job] = args.job_class
    return job(**{f.name: getattr(args, f.name) for f in dataclasses.fields(job)})


def run_job(args: argparse.Namespace) -> int:
    """Run the parsed job with progress on stderr and print its result."""

    print_result(job_from_args(args).run(progress=progress.stderr_progress, notify=note))
    return 0


def print_result(result: JobResult) -> None:
    """A job's warnings on stderr (one line each), then its summary on stdout."""
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for line in result.summary:
        print(line)


def note(text: str) -> None:
    """A note while a command runs (stderr)."""
    print(text, file=sys.stderr)


def add_device_option(parser: argparse.ArgumentParser, default: str = "auto", note: str = "") -> None:
    """``--device`` for a command that is not a job (batch): the name is checked when parsed."""
    parser.add_argument("--device", type=_argparse_type(device_name), default=default,
                        help=f"auto | cpu | cuda[:N] | mps (default {default}){note}")


OUTPUT_DESTS = ("output", "json", "pdf", "output_dir")  # options of the other commands naming what they write


def check_outputs_apart(args: argparse.Namespace) -> None:
    """For commands that are not jobs (report, batch): outputs apart from the inputs, before any compute.

    Jobs check themselves when they run (also when batch or rerun builds them).
    """
    options = {k: v for k, v in vars(args).items() if k not in ("func", "command") and not k.startswith("_")}
    outputs = {k: v for k, v in options.items() if k in OUTPUT_DESTS and isinstance(v, str | Path) and str(v)}
    inputs = [p for k, v in options.items() if k not in OUTPUT_DESTS for p in existing_paths(v)]
    output_rules.check_outputs_apart(outputs, inputs, folders=("output_dir",))
