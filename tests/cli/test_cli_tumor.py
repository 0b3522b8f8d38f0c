"""`segment` and `click-segment`: labels on FLAIR's grid, JSON volumes + provenance, clear failures."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_brain_dl.cli import main
from napari_brain_dl.core import io


@pytest.fixture(scope="module")
def gli(data_dir: Path) -> dict[str, str]:
    folder = data_dir / "brats_gli_00001"
    return {
        "flair": str(folder / "t2f.nii.gz"),
        "t1c": str(folder / "t1c.nii.gz"),
        "t1": str(folder / "t1n.nii.gz"),
    }


def test_segment_writes_labels_on_flair_grid_with_json(
    gli: dict[str, str], tmp_path: Path, rule_card: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out, report = tmp_path / "tumor.nii.gz", tmp_path / "tumor.json"
    card = rule_card
    code = main(
        [
            "segment",
            "--flair",
            gli["flair"],
            "--t1c",
            gli["t1c"],
            "--t1",
            gli["t1"],
            "-o",
            str(out),
            "--json",
            str(report),
            "--model",
            card,
            "--device",
            "cpu",
            "--tta",
            "--uncertainty",
            str(tmp_path / "unc.nii.gz"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    flair = nib.load(gli["flair"])
    labels = nib.load(out)
    assert labels.shape == flair.shape and np.allclose(labels.affine, flair.affine, atol=1e-5)
    values = np.asarray(labels.dataobj)
    data = json.loads(report.read_text())
    m = data["measurements"]
    assert m["whole_tumor_ml"] == pytest.approx(float((values > 0).sum()) * 1e-3, rel=1e-6)
    assert m["tumor_core_ml"] == pytest.approx(float(np.isin(values, (1, 3)).sum()) * 1e-3, rel=1e-6)
    assert data["provenance"]["model_id"] == "rule-tumor" and data["provenance"]["missing_inputs"] == ["T2"]
    assert data["provenance"]["inputs"]["FLAIR"].endswith("t2f.nii.gz") and "review_slices" in data
    assert (tmp_path / "unc.nii.gz").exists()
    assert "whole tumour" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["exists", "zero_t1c", "uncertainty_without_tta", "far_t1c", "bad_suffix"])
def test_segment_bad_input_one_sentence_nothing_written(
    case: str, gli: dict[str, str], tmp_path: Path, rule_card: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / ("tumor.txt" if case == "bad_suffix" else "tumor.nii.gz")
    t1c = gli["t1c"]
    extra: list[str] = []
    if case == "exists":
        out.write_bytes(b"keep me")
    elif case == "zero_t1c":
        vol = io.load(t1c)
        t1c = str(io.save(vol.with_data(np.zeros(vol.shape, np.int16)), tmp_path / "zero.nii.gz"))
    elif case == "far_t1c":
        vol = io.load(t1c)
        vol.affine[:3, 3] += 400
        t1c = str(io.save(vol, tmp_path / "far.nii.gz"))
    elif case == "uncertainty_without_tta":
        extra = ["--uncertainty", str(tmp_path / "u.nii.gz")]
    code = main(
        [
            "segment",
            "--flair",
            gli["flair"],
            "--t1c",
            t1c,
            "-o",
            str(out),
            "--json",
            str(tmp_path / "r.json"),
            "--model",
            rule_card,
            "--device",
            "cpu",
            *extra,
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 3 and len(err.splitlines()) == 1 and err.endswith("."), err
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "u.nii.gz").exists()
    if case == "exists":
        assert out.read_bytes() == b"keep me"
    else:
        assert not out.exists()


def test_segment_without_t1c_gives_whole_tumour_and_says_why(
    gli: dict[str, str], tmp_path: Path, rule_card: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out, report = tmp_path / "wt.nii.gz", tmp_path / "wt.json"
    code = main(["segment", "--flair", gli["flair"], "--t1", gli["t1"], "-o", str(out), "--json", str(report),
                 "--model", rule_card, "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    values = np.asarray(nib.load(out).dataobj)
    assert set(np.unique(values)) == {0, 2}
    data = json.loads(report.read_text())
    assert set(data["regions_left_out"]) == {"TC", "ET"} and "T1c" in data["regions_left_out"]["ET"]
    m = data["measurements"]
    assert m["whole_tumor_ml"] == pytest.approx(float((values > 0).sum()) * 1e-3, rel=1e-6)
    assert m["tumor_core_ml"] is None and m["enhancing_ml"] is None  # not segmented, not "0 mL"
    assert any("only the whole tumour" in n for n in data["notes"])
    assert "core, enhancing left out" in capsys.readouterr().out


def test_segment_without_flair_and_t1c_is_one_sentence(
    gli: dict[str, str], tmp_path: Path, rule_card: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tumor.nii.gz"
    code = main(["segment", "--t1", gli["t1"], "-o", str(out), "--json", str(tmp_path / "r.json"),
                 "--model", rule_card, "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 3 and len(err.splitlines()) == 1 and "--flair or --t1c" in err, err
    assert not out.exists() and not (tmp_path / "r.json").exists()


def test_click_segment_bad_click_is_one_sentence(
    gli: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mask.nii.gz"
    code = main(
        ["click-segment", "--flair", gli["flair"], "--t1c", gli["t1c"], "--fg", "500,10,10", "-o", str(out)]
    )
    err = capsys.readouterr().err.strip()
    assert code == 3 and len(err.splitlines()) == 1 and not out.exists(), err
    with pytest.raises(SystemExit):
        main(["click-segment", "--flair", gli["flair"], "--t1c", gli["t1c"], "--fg", "1,2", "-o", str(out)])
