"""The project's classifier on the held-out case: calibrated answer, heatmaps on the tumour, checks.

brats_2013_pat0006_1 is never trained on (scripts/brats_data.py VALIDATION). Its expert
tumour label is the known right answer for the heatmaps.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_brain_dl.core import io
from napari_brain_dl.core.explain.gradcam import LayerError
from napari_brain_dl.core.explain.occlusion import count_monai_default_passes
from napari_brain_dl.core.models.loaders import load_model
from napari_brain_dl.core.models.registry import resolve_model
from napari_brain_dl.core.tasks.classify import classify, explain
from napari_brain_dl.core.volume import Volume


@pytest.fixture(scope="module")
def case(data_dir: Path) -> dict[str, Volume]:
    folder = data_dir / "brats2015_flair_t1c" / "brats_2013_pat0006_1"
    return {
        "flair": io.load(folder / "Flair_subtrMeanDivStd.nii.gz"),
        "t1c": io.load(folder / "T1c_subtrMeanDivStd.nii.gz"),
        "tumour": io.load(folder / "OTMultiClass.nii.gz"),
    }


@pytest.fixture(scope="module")
def gradcam_result(case: dict[str, Volume]):  # type: ignore[no-untyped-def]
    torch.set_num_threads(max(1, torch.get_num_threads()))
    return explain(case["flair"], case["t1c"], method="gradcam", mask=case["tumour"])


def test_card_is_calibrated_and_small() -> None:
    card = resolve_model("tumor-present")
    assert card.task == "classification" and card.available
    assert card.output["temperature"] > 0 and card.output["temperature"] != 1.0  # fitted on validation data
    assert card.weights_path.stat().st_size < 2_000_000
    assert "train_tumor_classifier.py" in card.card_path.read_text()  # the reproduce command


def test_classify_finds_the_tumour_with_and_without_t1c(case: dict[str, Volume]) -> None:
    both = classify(case["flair"], case["t1c"])
    assert both.predicted == "tumour" and both.probabilities["tumour"] > 0.9
    assert sum(both.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert both.provenance["model_id"] == "tumor-present" and both.provenance["weights_sha256"]
    flair_only = classify(case["flair"])
    assert flair_only.predicted == "tumour"
    assert any("T1c not given" in n for n in flair_only.provenance["notes"])


def test_classify_healthy_brain_says_no_tumour(data_dir: Path) -> None:
    healthy = io.load(data_dir / "niivue_templates" / "MR_Gd.nii.gz")  # held out from training
    assert classify(healthy).predicted == "no_tumour"


def test_gradcam_lands_on_the_tumour_and_passes_its_checks(gradcam_result, case: dict[str, Volume]) -> None:  # type: ignore[no-untyped-def]
    result = gradcam_result
    assert result.heatmap.same_grid(case["flair"]) and result.layer == "blocks.3"
    assert result.target_class == "tumour"
    local = result.check("localisation")
    assert local.value >= 0.5, local.details  # >= 50 % of the positive energy inside the tumour label
    rand = result.check("randomisation")
    assert rand.verdict == "pass", rand.details
    assert result.check("deletion_insertion").verdict in ("pass", "warn")
    data = result.to_dict()
    assert set(data["checks"]) == {"randomisation", "deletion_insertion", "localisation"}
    assert data["forward_passes"] == result.forward_passes > 10


def test_fast_occlusion_lands_on_the_tumour(case: dict[str, Volume]) -> None:
    result = explain(case["flair"], case["t1c"], method="occlusion", mask=case["tumour"], run_checks=False)
    assert result.check("localisation").value >= 0.5, result.check("localisation").details
    shape = tuple(result.provenance["model_grid_shape"])
    assert result.forward_passes * 20 <= count_monai_default_passes(shape) + 1
    assert result.heatmap.same_grid(case["flair"])


def test_randomisation_check_fails_for_random_weights(case: dict[str, Volume]) -> None:
    card = dataclasses.replace(resolve_model("tumor-present"), weights_path=None)
    torch.manual_seed(0)
    random_model = load_model(card, allow_random_weights=True)
    result = explain(case["flair"], case["t1c"], model=random_model, method="gradcam")
    assert result.check("randomisation").verdict == "fail", result.check("randomisation").details


def test_bad_requests_say_what_is_wrong(case: dict[str, Volume], rule_card: str) -> None:
    with pytest.raises(LayerError, match=r"no layer called 'blocks\.9'.*blocks\.3"):
        explain(case["flair"], method="gradcam", layer="blocks.9", run_checks=False)
    with pytest.raises(ValueError, match=r"Class index 2 is out of range.*0 to 1"):
        explain(case["flair"], method="gradcam", target_class=2, run_checks=False)
    with pytest.raises(ValueError, match="no class 'edema'"):
        explain(case["flair"], method="gradcam", target_class="edema", run_checks=False)
    four = {"FLAIR": case["flair"], "T1c": case["t1c"], "T1": case["flair"], "T2": case["flair"]}
    with pytest.raises(ValueError, match="segmentation model, not a classifier"):
        explain(inputs=four, model=rule_card, method="gradcam", run_checks=False)
    with pytest.raises(ValueError, match="not class scores"):
        classify(inputs=four, model=rule_card)
    with pytest.raises(ValueError, match="Unknown method"):
        explain(case["flair"], method="lime")


def test_segmentation_model_explains_a_region(case: dict[str, Volume], rule_card: str) -> None:
    four = {"FLAIR": case["flair"], "T1c": case["t1c"], "T1": case["flair"], "T2": case["flair"]}
    result = explain(
        inputs=four,
        model=rule_card,
        method="occlusion",
        mask=case["tumour"],
        target_class=1,
        run_checks=False,
        patch=24,
        stride=24,
    )
    assert result.heatmap.same_grid(case["flair"]) and result.classification is None
    assert result.target_class == "WT" and np.isfinite(result.heatmap.data).all()


def test_a_users_torchscript_classifier_is_classified_and_calibrated(tmp_path: Path) -> None:
    """Any classification card runs: a TorchScript T1 classifier ('bright' vs 'dark'), temperature 2."""
    import yaml

    class Brightness(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            m = x.mean(dim=(2, 3, 4))
            return torch.cat([-m, m], dim=1) * 4.0

    torch.jit.script(Brightness()).save(str(tmp_path / "bright.pt"))
    card = {
        "id": "bright", "name": "Bright", "task": "classification", "inputs": ["T1"],
        "preprocessing": [{"op": "scale", "low": -1.0, "high": 1.0}],
        "output": {"kind": "probabilities", "channels": ["dark", "bright"], "temperature": 2.0},
        "architecture": {"type": "torchscript"}, "weights": {"file": "bright.pt"}, "trusted": True,
    }
    (tmp_path / "bright.yaml").write_text(yaml.safe_dump(card))
    data = np.zeros((32, 32, 32), np.float32)
    data[2:30, 2:30, 2:30] = 1.0  # two thirds bright: mean > 0 after scaling to [-1, 1]
    result = classify(inputs={"T1": Volume(data, np.eye(4), "t1")}, model=str(tmp_path / "bright.yaml"))
    assert result.predicted == "bright" and result.temperature == 2.0
    logits = np.array(result.logits)
    expected = np.exp(logits / 2.0) / np.exp(logits / 2.0).sum()
    assert result.probabilities["bright"] == pytest.approx(float(expected[1]), rel=1e-4)
