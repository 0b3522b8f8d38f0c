"""Resource guards: too large a volume is refused before it is read; a model run that would not fit
in memory shrinks its sliding window or is refused with the numbers, before it starts.

Free memory is simulated (monkeypatched `available_memory_bytes` / `torch.cuda.mem_get_info`),
so the tests run on any machine with tiny volumes.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from bad_inputs.commands import run_cli, write_tiny_card
from bad_inputs.corpus import ROWS, build_corpus
from napari_brain_dl.core import inference, io
from napari_brain_dl.core.models.registry import resolve_model
from napari_brain_dl.core.volume import Volume


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {c.path.name: c.path for c in build_corpus(tmp_path_factory.mktemp("resources"))}


@pytest.mark.parametrize("name", ["good_t1.nii.gz", "dicom_mixed"])
def test_voxel_limit_refuses_before_reading(scans: dict[str, Path], name: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(io.MAX_VOXELS_ENV, "5000")
    path = scans[name]
    args: list[str] = []
    if path.is_dir():  # the 20-slice series of the two: 24 x 24 x 20 like the NIfTI
        from napari_brain_dl.core.dicom import list_series

        args = ["--series", max(list_series(path).items(), key=lambda item: len(item[1]))[0]]
    result = run_cli(["convert", str(path), str(tmp_path / "o.nii.gz"), *args], tmp_path)
    ROWS.append((f"volume over {io.MAX_VOXELS_ENV}", "convert", "refused" if result.code == 3 else "ACCEPTED",
                 result.message.replace(str(path.parent) + "/", "")[:150]))
    assert result.code == 3 and io.MAX_VOXELS_ENV in result.message and path.name in result.message
    assert "11,520 voxels" in result.message and not result.files
    monkeypatch.setenv(io.MAX_VOXELS_ENV, "100000")
    assert run_cli(["convert", str(path), str(tmp_path / "o.nii.gz"), *args], tmp_path).code == 0


def _sliding_card(folder: Path, roi: list[int]) -> str:
    path = Path(write_tiny_card(folder))
    card = yaml.safe_load(path.read_text())
    card["id"] = f"tiny-window-{roi[0]}"
    card["inference"] = {"mode": "sliding_window", "roi_size": roi, "overlap": 0.25, "crop": "none"}
    path.write_text(yaml.safe_dump(card))
    return str(path)


def test_window_shrinks_to_fit_and_result_is_unchanged(scans: dict[str, Path], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    volume = Volume(rng.random((96, 96, 80), dtype=np.float32), np.diag([2.0, 2.0, 2.0, 1.0]), name="big")
    card = resolve_model(_sliding_card(tmp_path / "m", [64, 64, 64]))
    free = inference.estimate_memory(card, (1, *volume.shape), (32, 32, 32))
    roomy = inference.predict(card, volume, device="cpu").primary.data
    monkeypatch.setattr(io, "available_memory_bytes", lambda: int((free["host"] + free["network"]) / 0.79))
    notes: list[str] = []
    shrunk = inference.predict(card, volume, device="cpu", notify=notes.append)
    assert len(notes) == 1 and "window was shrunk" in notes[0]
    assert shrunk.provenance["parameters"]["roi_size"][0] < 64
    assert (shrunk.primary.data == roomy).all()


def test_run_that_cannot_fit_is_refused_with_the_numbers(scans: dict[str, Path], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    card = write_tiny_card(tmp_path / "m")
    monkeypatch.setattr(io, "available_memory_bytes", lambda: 200_000)  # 0.2 MB free
    out = tmp_path / "out"
    result = run_cli(["run", "--model", card, "--input", str(scans["good_t1.nii.gz"]), "-o",
                      str(out / "o.nii.gz"), "--device", "cpu"], out)
    ROWS.append(("model run larger than free memory", "run", "refused" if result.code == 3 else "ACCEPTED",
                 result.message[:150]))
    assert result.code == 3 and "needs about" in result.message and "KiB free" in result.message
    assert "24 x 24 x 20" in result.message and not result.files


def test_gpu_memory_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    card = SimpleNamespace(id="wide", output={"channels": ["a", "b"]}, labels=[],
                           architecture={"channels": 64})
    monkeypatch.setattr(io, "available_memory_bytes", lambda: 2**40)  # the host has plenty
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2**20, 2**34))  # 1 MiB free
    with pytest.raises(inference.ResourceError, match="GPU memory"):
        inference.guard_memory(card, (1, 96, 96, 96), None, torch.device("cuda"), None)
    notes: list[str] = []
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2**30, 2**34))  # 1 GiB free
    roi = inference.guard_memory(card, (1, 256, 256, 256), (128, 128, 128), torch.device("cuda"),
                                 notes.append)
    assert roi is not None and np.prod(roi) < 128**3 and notes and "shrunk" in notes[0]
