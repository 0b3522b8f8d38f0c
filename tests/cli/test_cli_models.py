"""Command-line model subcommands: models list, skullstrip, run; clear failures, nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_brain_dl.cli import main as cli
from napari_brain_dl.core import io


def test_models_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["models", "list", "--json"]) == 0
    listed = {m["id"]: m for m in json.loads(capsys.readouterr().out)}
    assert listed["mindgrab"]["weights_sha256"].startswith("31f1bda1") and not listed["mindgrab"]["available"]
    assert cli(["models", "list"]) == 0
    assert "mindgrab" in capsys.readouterr().out


def test_bad_inputs_exit_3_with_one_sentence(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t1 = str(data_dir / "brainchop_models" / "t1_crop.nii.gz")
    cases = [
        ["skullstrip", str(tmp_path / "missing.nii.gz"), str(tmp_path / "o.nii.gz")],
        ["skullstrip", t1, str(tmp_path / "o.txt")],
        ["skullstrip", t1, str(tmp_path / "o.nii.gz"), "--model", str(tmp_path)],
        ["run", "--model", "nope", "--input", t1, "-o", str(tmp_path / "o.nii.gz")],
        [
            "run",
            "--model",
            str(data_dir / "monai_bundles" / "brats_mri_segmentation"),
            "--input",
            t1,
            "-o",
            str(tmp_path / "o.nii.gz"),
        ],
    ]
    for argv in cases:
        assert cli(argv) == 3, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_existing_output_needs_overwrite(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mask.nii.gz"
    out.write_bytes(b"keep me")
    t1 = str(data_dir / "brats_gli_00001" / "t1n.nii.gz")
    assert cli(["skullstrip", t1, str(out)]) == 3
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == b"keep me"


@pytest.mark.slow
def test_run_tissue_model_writes_labels_and_json(tmp_path: Path, data_dir: Path) -> None:
    t1 = data_dir / "brats_gli_00001" / "t1n.nii.gz"
    out, report = tmp_path / "tissue.nii.gz", tmp_path / "tissue.json"
    assert (
        cli(
            [
                "run",
                "--model",
                str(data_dir / "brainchop_models" / "model5_gw_ae" / "model.pth"),
                "--input",
                str(t1),
                "-o",
                str(out),
                "--json",
                str(report),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    saved, source = io.load(out), io.load(t1)
    assert saved.same_grid(source) and saved.axcodes == "LPS"
    info = json.loads(report.read_text())
    assert info["provenance"]["model_id"] == "model5_gw_ae"
    assert {r["name"] for r in info["regions"]} == {"white matter", "grey matter"}


@pytest.mark.slow
def test_skullstrip_template_fallback_cli(tmp_path: Path, data_dir: Path) -> None:
    t1 = data_dir / "brats_gli_00001" / "t1n.nii.gz"
    out = tmp_path / "mask.nii.gz"
    assert cli(["skullstrip", str(t1), str(out)]) == 0
    mask = io.load(out)
    assert mask.same_grid(io.load(t1)) and set(np.unique(mask.data)) == {0, 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.nii.gz", "mask.nii.gz.json"]  # + provenance
