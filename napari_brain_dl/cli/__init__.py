"""`napari-brain-dl`: the headless twin of every dock widget.

Each subcommand builds the same job (`core.jobs`) or calls the same core function its widget
uses. Exit codes: 0 done, 1 finished with failed subjects (batch) or differing outputs
(rerun), 2 usage error (argparse), 3 bad input (one sentence on stderr, nothing written),
4 the computation failed (memory, device, library), 130 interrupted. Outputs are written
atomically and never replace an existing file without --overwrite.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from .. import __version__
from ..core import output_rules
from ..core.errors import sentence
from ..core.jobs import JOBS
from ..core.output_rules import output_journal
from . import batch, files, models, report, rerun
from ._common import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_RUNTIME, add_job_parser, check_outputs_apart


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="napari-brain-dl", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"napari-brain-dl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    files.register(sub)
    models.register(sub)
    for job in JOBS.values():
        add_job_parser(sub, job)
    report.register(sub)
    rerun.register(sub)
    batch.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `napari-brain-dl` console script; every refusal is caught here, once."""
    args = build_parser().parse_args(argv)
    args._started = time.time()  # wall-clock start
    with output_journal() as journal:
        try:
            if getattr(args, "job_class", None) is None:
                check_outputs_apart(args)  # jobs check their own outputs when they run
            return int(args.func(args) or 0)
        except (ValueError, OSError, KeyError) as exc:  # InputError; missing, existing, unwritable files
            print(f"error: {sentence(exc)}", file=sys.stderr)
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


