"""`super-resolve`: isotropic output with JSON, 'nothing to do' exits 0, bad input exits 3."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from napari_brain_dl.cli import main
from napari_brain_dl.core import io
from napari_brain_dl.core.models import srnet


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _scan(path: Path, spacing: tuple[float, float, float], shape: tuple[int, int, int] = (24, 20, 8)) -> Path:
    data = np.zeros(shape, np.int16)
    data[4:-4, 4:-4, 2:-2] = 100
    data[8:12, 6:14, :] = 250
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])  # LPS
    affine[:3, 3] = (40.0, 30.0, -10.0)
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def test_bspline_writes_isotropic_volume_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _scan(tmp_path / "thick.nii.gz", (0.9, 0.9, 2.7))
    out, report = tmp_path / "iso.nii.gz", tmp_path / "iso.json"
    code = main(["super-resolve", str(src), str(out), "--method", "bspline", "--json", str(report)])
    assert code == 0, capsys.readouterr().err
    vol = io.load(out)
    assert np.allclose(vol.spacing, 0.9) and vol.shape == (24, 20, 24) and vol.axcodes == "LPS"
    assert vol.meta["header_text"]["descrip"].startswith("super-resolved bspline")  # free text: kept apart
    info = json.loads(report.read_text())
    assert info["method"] == "bspline" and info["seconds"] >= 0
    assert info["grid_in"]["shape"] == [24, 20, 8] and info["grid_out"]["shape"] == [24, 20, 24]
    assert info["provenance"]["slice_thickness_mm"] == pytest.approx(2.7, abs=1e-3)
    assert "0.900 mm isotropic" in capsys.readouterr().out
    # no silent overwrite
    assert main(["super-resolve", str(src), str(out), "--method", "bspline"]) == 3
    assert "already exists" in capsys.readouterr().err


def test_self_supervised_default_method(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default method end to end, with a tiny training budget (same algorithm)."""
    tiny = srnet.SRSettings(layers=3, channels=4, steps=3, batch=2, patch=16)
    monkeypatch.setattr(srnet, "SRSettings", lambda: tiny)
    src = _scan(tmp_path / "thick.nii.gz", (1.0, 1.0, 3.0))
    out = tmp_path / "sr.nii.gz"
    assert main(["super-resolve", str(src), str(out), "--device", "cpu"]) == 0
    vol = io.load(out)
    assert vol.shape == (24, 20, 24) and "self-supervised" in vol.meta["header_text"]["descrip"]


def test_isotropic_scan_exits_0_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _scan(tmp_path / "iso.nii.gz", (1.0, 1.0, 1.0))
    out, report = tmp_path / "out.nii.gz", tmp_path / "out.json"
    assert main(["super-resolve", str(src), str(out), "--json", str(report)]) == 0
    assert "already isotropic" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iso.nii.gz"]


def test_self_check_is_in_the_json_and_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The self-check (held-out gain, blend weight, sentence) is in the JSON, its provenance, and printed."""
    tiny = srnet.SRSettings(layers=3, channels=4, steps=3, batch=2, patch=16, samples=5000)
    monkeypatch.setattr(srnet, "SRSettings", lambda: tiny)
    src = _scan(tmp_path / "thick.nii.gz", (1.0, 1.0, 3.0))
    out, report = tmp_path / "sr.nii.gz", tmp_path / "sr.json"
    assert main(["super-resolve", str(src), str(out), "--device", "cpu", "--json", str(report)]) == 0
    info = json.loads(report.read_text())
    check = info["self_check"]
    assert check == info["provenance"]["self_check"]
    assert isinstance(check["gain_db"], float) and 0.0 <= check["weight"] <= 1.0
    assert check["blended_gain_db"] >= 0.0 and len(check["held_out_slices"]) == 1
    assert check["sentence"].startswith("Self-check on 1 held-out in-plane slice")
    assert check["sentence"] in info["notes"] and check["sentence"] in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--spacing", "0"], "positive"), (["--spacing", "50"], "not finer"), (["--method", "nope"], "Unknown")],
)
def test_bad_requests_exit_3_with_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    src = _scan(tmp_path / "thick.nii.gz", (1.0, 1.0, 3.0))
    out = tmp_path / "out.nii.gz"
    assert main(["super-resolve", str(src), str(out), *extra]) == 3
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_2d_image_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((32, 32), np.float32), np.eye(4)), str(path))
    assert main(["super-resolve", str(path), str(tmp_path / "o.nii.gz")]) == 3
    assert "2D" in capsys.readouterr().err
