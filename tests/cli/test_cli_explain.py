"""`classify` and `explain`: JSON with probabilities / checks, heatmap on FLAIR's grid, clear failures."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_brain_dl.cli import main


@pytest.fixture(scope="module")
def case(data_dir: Path) -> dict[str, str]:
    folder = data_dir / "brats2015_flair_t1c" / "brats_2013_pat0006_1"
    return {
        "flair": str(folder / "Flair_subtrMeanDivStd.nii.gz"),
        "t1c": str(folder / "T1c_subtrMeanDivStd.nii.gz"),
        "mask": str(folder / "OTMultiClass.nii.gz"),
    }


def test_classify_prints_and_writes_json(
    case: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "c.json"
    code = main(["classify", "--flair", case["flair"], "--t1c", case["t1c"], "--json", str(report)])
    assert code == 0, capsys.readouterr().err
    data = json.loads(report.read_text())
    assert data["predicted_class"] == "tumour"
    assert set(data["probabilities"]) == {"no_tumour", "tumour"}
    assert data["provenance"]["model_id"] == "tumor-present" and data["temperature"] > 0
    assert "tumour" in capsys.readouterr().out


def test_explain_writes_heatmap_on_flair_grid_and_checks(
    case: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, report = tmp_path / "heat.nii.gz", tmp_path / "heat.json"
    code = main(
        [
            "explain",
            "--flair",
            case["flair"],
            "--t1c",
            case["t1c"],
            "--method",
            "gradcam",
            "-o",
            str(out),
            "--mask",
            case["mask"],
            "--json",
            str(report),
        ]
    )
    assert code == 0, capsys.readouterr().err
    flair, heat = nib.load(case["flair"]), nib.load(out)
    assert heat.shape == flair.shape and np.allclose(heat.affine, flair.affine, atol=1e-5)
    data = json.loads(report.read_text())
    assert data["prediction"]["predicted_class"] == "tumour"
    for name in ("randomisation", "deletion_insertion", "localisation"):
        assert data["checks"][name]["verdict"] in ("pass", "warn", "fail")
        assert isinstance(data["checks"][name]["value"], float) and data["checks"][name]["sentence"]
    assert data["forward_passes"] > 0 and data["seconds"] > 0
    # an existing output is never replaced without --overwrite
    assert main(["explain", "--flair", case["flair"], "-o", str(out), "--no-checks"]) == 3
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--layer", "blocks.9"], "no layer called 'blocks.9'"),
        (["--class", "5"], "Class index 5 is out of range"),
    ],
)
def test_explain_bad_input_is_one_sentence(
    case: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "heat.nii.gz"
    code = main(["explain", "--flair", case["flair"], "-o", str(out), "--no-checks", *extra])
    err = capsys.readouterr().err
    assert code == 3 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_explain_segmentation_model_without_region(
    case: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch
    import yaml

    torch.save(
        {"model.0.weight": torch.ones(2, 1, 1, 1, 1), "model.0.bias": torch.zeros(2)}, tmp_path / "seg.pth"
    )
    card = {
        "id": "seg-1x1",
        "name": "Seg",
        "task": "segmentation",
        "inputs": ["FLAIR"],
        "architecture": {
            "type": "meshnet",
            "layers": [{"in_channels": 1, "out_channels": 2, "kernel_size": 1, "padding": 0}],
        },
        "weights": {"file": "seg.pth"},
        "postprocessing": [{"op": "argmax"}],
    }
    (tmp_path / "seg.yaml").write_text(yaml.safe_dump(card))
    out = tmp_path / "h.nii.gz"
    code = main(["explain", "--flair", case["flair"], "--model", str(tmp_path / "seg.yaml"), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 3 and "segmentation model, not a classifier" in err and not out.exists()
