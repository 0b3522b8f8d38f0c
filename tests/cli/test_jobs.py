"""The job layer (#18): options declared once on the job; every command and batch task re-runs identically."""

from __future__ import annotations

import argparse
import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from napari_brain_dl.cli import build_parser, main
from napari_brain_dl.core import io
from napari_brain_dl.core.batch import run_batch
from napari_brain_dl.core.jobs import JOBS, RERUNNABLE, SegmentJob
from napari_brain_dl.core.jobs.rerun import job_from_record, rerun
from napari_brain_dl.core.provenance import read_sidecar, sidecar_path
from tests.core.test_provenance import _small_exam


def write_bright_card(folder: Path) -> Path:
    """A one-input labels model: 1 where the scan's brain z-score is above 1 (a 1x1x1 conv, argmax)."""
    import torch
    import yaml

    weight = torch.tensor([-20.0, 20.0]).reshape(2, 1, 1, 1, 1)
    torch.save({"model.0.weight": weight, "model.0.bias": torch.tensor([20.0, -20.0])}, folder / "bright.pth")
    card = {
        "id": "bright-voxels", "name": "Bright voxels", "task": "skullstrip", "inputs": ["T1"],
        "orientation": "LPS", "preprocessing": [{"op": "zscore_foreground"}],
        "postprocessing": [{"op": "softmax"}, {"op": "argmax"}],
        "output": {"kind": "labels", "channels": ["background", "bright"]},
        "architecture": {"type": "meshnet",
                         "layers": [{"in_channels": 1, "out_channels": 2, "kernel_size": 1, "padding": 0}]},
        "weights": {"file": "bright.pth"},
        "inference": {"mode": "whole", "crop": "head", "margin": 4},
    }
    (folder / "bright.yaml").write_text(yaml.safe_dump(card))
    return folder / "bright.yaml"


@pytest.fixture(scope="module")
def exam(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return _small_exam(data_dir / "brats_gli_00001", tmp_path_factory.mktemp("exam"))


@pytest.fixture(scope="module")
def bright_card(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_bright_card(tmp_path_factory.mktemp("bright")))


@pytest.fixture(scope="module")
def thick(exam: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """T1 with 6 mm slices: something to super-resolve."""
    scan = io.load(exam["t1n"])
    affine = scan.affine.copy()
    affine[:3, 2] *= 3
    folder = tmp_path_factory.mktemp("thick")
    return str(io.save(type(scan)(np.ascontiguousarray(scan.data[:, :, ::3]), affine, "t1"),
                       folder / "t1n.nii.gz"))


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_option_is_declared_once_on_its_job() -> None:
    """The parser of each job command is built from the job's fields: same names, nothing else."""
    commands = _subcommands()
    for name, job in JOBS.items():
        dests = {a.dest for a in commands[name]._actions if a.dest != "help"}
        fields = {f.name for f in dataclasses.fields(job) if f.metadata.get("cli")}
        assert dests == fields, name
    assert set(RERUNNABLE) == set(JOBS) - {"classify"}  # classify writes JSON only: no sidecar to re-run


def test_a_record_with_an_unknown_option_is_refused_by_name(exam: dict[str, str], tmp_path: Path) -> None:
    record = {"command": "segment", "options": {"flair": exam["t2f"], "output": str(tmp_path / "t.nii.gz"),
                                                "trust_me": True}}
    with pytest.raises(ValueError, match="no option 'trust_me'"):
        job_from_record(record)
    job = job_from_record({"command": "segment", "options": {"flair": exam["t2f"], "output": "t.nii.gz"}},
                          tmp_path)
    assert isinstance(job, SegmentJob) and job.output == str(tmp_path / "t.nii.gz") and not job.overwrite


def _command(name: str, exam: dict[str, str], out: Path, rule_card: str, bright_card: str,
             thick: str) -> list[str]:
    device = ["--device", "cpu"]
    four = [a for p in (exam["t2f"], exam["t1c"], exam["t1n"], exam["t1n"]) for a in ("--input", p)]
    return {
        "convert": ["convert", exam["t1n"], str(out)],
        "skullstrip": ["skullstrip", exam["t1n"], str(out), "--model", bright_card, *device],
        "run": ["run", "--model", rule_card, *four, "-o", str(out), *device],
        "segment": ["segment", "--flair", exam["t2f"], "--t1c", exam["t1c"], "--model", rule_card,
                    "-o", str(out), *device],
        "click-segment": ["click-segment", "--flair", exam["t2f"], "--t1c", exam["t1c"], "--fg", "70,50,32",
                          "--bg", "20,20,20", "-o", str(out), *device],
        "explain": ["explain", "--flair", exam["t2f"], "--t1c", exam["t1c"], "--no-checks", "-o", str(out)],
        "synthesize": ["synthesize", "--t1c", exam["t1c"], "--t1", exam["t1n"], "--target", "flair",
                       "-o", str(out.with_name("flair_synthetic.nii.gz")), *device],
        "super-resolve": ["super-resolve", thick, str(out), "--method", "bspline", *device],
    }[name]


@pytest.mark.parametrize("command", sorted(RERUNNABLE))
def test_rerun_of_every_command_is_byte_identical(command: str, exam: dict[str, str], thick: str,
                                                  rule_card: str, bright_card: str, tmp_path: Path) -> None:
    (tmp_path / "first").mkdir()
    argv = _command(command, exam, tmp_path / "first" / "out.nii.gz", rule_card, bright_card, thick)
    assert main(argv) == 0
    out = next(p for p in (tmp_path / "first").iterdir() if p.name.endswith(".nii.gz"))
    record = read_sidecar(out)
    assert record["command"] == command
    result = rerun(sidecar_path(out), tmp_path / "again")
    new = result["outputs"]["output"]
    assert new["identical"], f"{command}: {new}"
    assert read_sidecar(new["path"])["options"] == {**record["options"], "output": new["path"]}


@pytest.fixture(scope="module")
def _inproc_on_loopback() -> Iterator[None]:
    """Name inproc:// addresses after 127.0.0.1 (dask would otherwise probe 8.8.8.8 for this host's IP)."""
    from distributed.comm import inproc

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(inproc.global_manager, "_ip", "127.0.0.1")
        yield


BATCH = {  # task -> (options, scans of the one subject, the result file)
    "segment": ({"model": "RULE"}, ("t2f", "t1c", "t1n"), "tumor.nii.gz"),
    "skullstrip": ({"model": "BRIGHT"}, ("t1n",), "brainmask.nii.gz"),
    "parcellate": ({"model": "BRIGHT"}, ("t1n",), "parcellation.nii.gz"),
    "synthesize": ({"target": "flair"}, ("t1c", "t1n"), "flair_synthetic.nii.gz"),
    "super-resolve": ({"model": "bspline"}, ("thick",), "t1_superres.nii.gz"),
}


@pytest.mark.parametrize("task", sorted(BATCH))
def test_rerun_of_every_batch_task_is_byte_identical(task: str, exam: dict[str, str], thick: str,
                                                     rule_card: str, bright_card: str, tmp_path: Path,
                                                     _inproc_on_loopback: None) -> None:
    options, scans, result_name = BATCH[task]
    cards = {"RULE": rule_card, "BRIGHT": bright_card}
    options = {k: cards.get(v, v) for k, v in options.items()}
    subject = tmp_path / "in" / "case_a"
    subject.mkdir(parents=True)
    for scan in scans:
        name = "t1n" if scan == "thick" else scan
        shutil.copy(thick if scan == "thick" else exam[scan], subject / f"{name}.nii.gz")
    result = run_batch(tmp_path / "in", tmp_path / "out", task, options, processes=False)
    assert result.rows[0]["status"] == "ok", result.rows[0]["error"]
    assert result.rows[0]["outputs"] == f"case_a/{result_name}"
    out = tmp_path / "out" / "case_a" / result_name
    record = read_sidecar(out)
    assert record["batch"] and record["output"]["path"] == str(out.resolve())
    again = rerun(sidecar_path(out), tmp_path / "again")
    assert again["outputs"]["output"]["identical"], f"{task}: {again['outputs']['output']}"
