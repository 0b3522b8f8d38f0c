"""How each CLI subcommand is given a corpus case, and how its outcome is read.

`COMMANDS` maps a subcommand to a function building its argv from two scans (single-scan
commands use the first), the model cards it needs and a fresh output folder; `Case.pair` says
which two. `skullstrip` runs the tiny model card: its weight-free template registration takes
half a minute per scan.
"""

from __future__ import annotations

import contextlib
import io as _io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from napari_brain_dl.cli import build_parser, main

Argv = Callable[[str, str, dict[str, str], Path], list[str]]


def _segment(a: str, b: str, cards: dict[str, str], out: Path) -> list[str]:
    return ["segment", "--flair", a, "--t1c", b, "--model", cards["rule"], "--device", "cpu",
            "-o", str(out / "seg.nii.gz"), "--json", str(out / "seg.json")]


def _click(a: str, b: str, cards: dict[str, str], out: Path) -> list[str]:
    return ["click-segment", "--flair", a, "--t1c", b, "--fg", "8,12,10", "--device", "cpu",
            "-o", str(out / "mask.nii.gz")]


def _synth(a: str, b: str, cards: dict[str, str], out: Path) -> list[str]:
    return ["synthesize", "--t1", a, "--t2", b, "--target", "flair", "--model", "histogram",
            "--device", "cpu", "-o", str(out / "flair_synthetic.nii.gz")]


#: subcommand -> argv from (first scan, second scan, model cards, output folder); single-scan
#: commands use the first only.
COMMANDS: dict[str, Argv] = {
    "info": lambda a, b, cards, out: ["info", a],
    "convert": lambda a, b, cards, out: ["convert", a, str(out / "converted.nii.gz")],
    "skullstrip": lambda a, b, cards, out: ["skullstrip", a, str(out / "mask.nii.gz"),
                                            "--model", cards["tiny"], "--device", "cpu"],
    "run": lambda a, b, cards, out: ["run", "--model", cards["tiny"], "--input", a,
                                     "-o", str(out / "run.nii.gz"), "--device", "cpu"],
    "segment": _segment,
    "click-segment": _click,
    "classify": lambda a, b, cards, out: ["classify", "--flair", a],
    "explain": lambda a, b, cards, out: ["explain", "--flair", a, "--no-checks",
                                         "-o", str(out / "heat.nii.gz")],
    "synthesize": _synth,
    "super-resolve": lambda a, b, cards, out: ["super-resolve", a, str(out / "sr.nii.gz"),
                                               "--method", "bspline", "--device", "cpu"],
    "report": lambda a, b, cards, out: ["report", "--scan", f"FLAIR={a}", "-o", str(out / "report.html")],
}
#: Commands taking two contrasts on one grid (the far-grid case is only meaningful for them).
PAIRED = {"segment", "click-segment", "synthesize"}
#: Commands left out, with the reason: they read no scan given on the command line.
NO_INPUT = {
    "models": "lists model cards",
    "demo": "opens a napari window",
    "rerun": "reads a provenance sidecar, not a scan",
    "batch": "reads a dataset folder (one subject per folder)",
    "open-subject": "reads cohort.csv and opens a window",
}
#: The group whose expectation applies (see `Case.expectation`).
GROUPS = {"info": "io", "convert": "io", "run": "generic", "skullstrip": "generic", "report": "io",
          "super-resolve": "generic"}


def available_commands() -> list[str]:
    """Subcommands of this build of the CLI that read a scan, in `--help` order."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    names = [n for n in sub.choices if n not in NO_INPUT]
    missing = [n for n in names if n not in COMMANDS]
    assert not missing, f"add the new subcommand(s) {missing} to tests/bad_inputs/commands.py"
    return names


@dataclass
class Outcome:
    """What one CLI run did."""

    code: int
    out: str
    err: str
    files: list[Path]

    @property
    def error_lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.startswith(("error:", "napari-brain-dl:"))]

    @property
    def message(self) -> str:
        """The error sentence; else the warnings (stderr, or the JSON of `info`); else the first note."""
        if self.error_lines:
            return self.error_lines[-1].split(":", 1)[1].strip()
        warnings = [ln.removeprefix("warning:").strip() for ln in self.err.splitlines()
                    if ln.startswith("warning:")]
        if not warnings and self.out.lstrip().startswith("{"):
            with contextlib.suppress(ValueError):
                warnings = list(json.loads(self.out).get("warnings") or [])
        if warnings:
            return " / ".join(warnings)
        notes = [ln.strip() for ln in self.err.splitlines() if ln.strip() and not ln.lstrip().startswith("[")]
        return notes[0] if notes else ""


def run_cli(argv: list[str], out: Path) -> Outcome:
    """Run the CLI in this process, capturing stdout/stderr; list the files left in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    stdout, stderr = _io.StringIO(), _io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
        except Exception as exc:
            import traceback

            traceback.print_exc(file=stderr)
            code = -1
            stderr.write(f"CRASH {type(exc).__name__}: {exc}\n")
    return Outcome(code, stdout.getvalue(), stderr.getvalue(), sorted(out.rglob("*")))


class _Threshold(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([0.5 - x[:, :1], x[:, :1] - 0.5], dim=1)


def write_tiny_card(folder: Path) -> str:
    """A one-input TorchScript threshold model (fast, no weights to download)."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.jit.script(_Threshold()).save(str(folder / "tiny.ts"))
    card: dict[str, Any] = {
        "id": "tiny-threshold", "name": "Tiny threshold", "task": "segmentation", "inputs": ["T1"],
        "preprocessing": [{"op": "scale", "low": 0.0, "high": 1.0}], "postprocessing": [{"op": "argmax"}],
        "output": {"kind": "labels"}, "architecture": {"type": "torchscript"},
        "weights": {"file": "tiny.ts"}, "inference": {"mode": "whole", "crop": "none"},
    }
    (folder / "tiny.yaml").write_text(yaml.safe_dump(card))
    return os.fspath(folder / "tiny.yaml")
