"""MONAI bundles: the BraTS SegResNet runs, others explain what they lack, `$` code refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_brain_dl.core import io
from napari_brain_dl.core.inference import get_model, predict
from napari_brain_dl.core.models.bundle import BundleError, card_from_bundle
from napari_brain_dl.core.models.loaders import UntrustedModelError, load_model
from napari_brain_dl.core.models.registry import resolve_model, trust


def test_brats_card_from_bundle(data_dir: Path) -> None:
    card = card_from_bundle(data_dir / "monai_bundles" / "brats_mri_segmentation")
    assert card.inputs == ["T1c", "T1", "T2", "FLAIR"]
    assert card.inference["mode"] == "sliding_window" and card.inference["roi_size"] == [240, 240, 160]
    assert card.preprocessing == [{"op": "zscore", "nonzero": True}]
    assert [s["op"] for s in card.postprocessing] == ["sigmoid", "brats_regions"]
    assert not card.weights  # models/model.pt is not distributed here


@pytest.mark.slow
def test_brats_segresnet_runs_with_random_weights_on_lps_exam(data_dir: Path) -> None:
    torch.manual_seed(0)
    card = resolve_model(data_dir / "monai_bundles" / "brats_mri_segmentation")
    model = get_model(card, "cpu", allow_random_weights=True)
    assert type(model.module).__name__ == "SegResNet"
    exam = data_dir / "brats_gli_00001"
    vols = [io.load(exam / f"{c}.nii.gz") for c in ("t1c", "t1n", "t2w", "t2f")]  # card order
    steps: list[int] = []
    pred = predict(model, vols, device="cpu", progress=lambda d, t, s: steps.append(d))
    labels = pred.outputs["labels"]
    assert labels.same_grid(vols[0]) and labels.axcodes == "LPS" and labels.shape == (240, 240, 155)
    assert set(np.unique(labels.data)) <= {0, 1, 2, 4}
    assert (
        pred.provenance["model_id"] == "brats_mri_segmentation" and pred.provenance["weights_sha256"] is None
    )
    assert steps and max(steps) >= 1
    with pytest.raises(ValueError, match="T1c, T1, T2, FLAIR"):
        predict(model, vols[:2], device="cpu")


@pytest.mark.parametrize(
    ("bundle", "missing"),
    [
        (
            "wholeBrainSeg_Large_UNEST_segmentation",
            r"scripts/ code \(scripts\.networks\.unest_base_patch_4\.UNesT",
        ),
        ("brats_mri_generative_diffusion", r"scripts/ code"),
        ("brats_mri_axial_slices_generative_diffusion", r"scripts/ code"),
        ("brain_image_synthesis_latent_diffusion_model", r"`generative` package"),
    ],
)
def test_bundles_needing_missing_code_say_what(data_dir: Path, bundle: str, missing: str) -> None:
    card = resolve_model(data_dir / "monai_bundles" / bundle)
    with pytest.raises(BundleError, match=missing):
        load_model(card, allow_random_weights=True)


def _hostile_bundle(folder: Path, network_def: dict) -> Path:
    (folder / "configs").mkdir(parents=True)
    (folder / "configs" / "inference.json").write_text(
        json.dumps(
            {
                "imports": ["$import os"],
                "network_def": network_def,
                "run": [f"$open({str(folder / 'run.txt')!r}, 'w').write('x')"],
            }
        )
    )
    return folder


def test_dollar_code_in_bundle_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned.txt"
    folder = _hostile_bundle(
        tmp_path / "evil",
        {
            "_target_": "monai.networks.nets.BasicUNet",
            "spatial_dims": 3,
            "in_channels": f"$open({str(marker)!r}, 'w').write('x') and 1",
            "out_channels": 2,
        },
    )
    with pytest.raises(UntrustedModelError, match="would run code"):
        load_model(card_from_bundle(folder), allow_random_weights=True)
    assert not marker.exists() and not (folder / "run.txt").exists()


def test_target_outside_allow_list_refused(tmp_path: Path) -> None:
    folder = _hostile_bundle(tmp_path / "evil", {"_target_": "shutil.rmtree", "path": str(tmp_path / "x")})
    with pytest.raises(UntrustedModelError, match=r"shutil\.rmtree"):
        load_model(card_from_bundle(folder), allow_random_weights=True)


def test_trusted_bundle_may_use_expressions(tmp_path: Path) -> None:
    folder = _hostile_bundle(
        tmp_path / "ok",
        {
            "_target_": "monai.networks.nets.BasicUNet",
            "spatial_dims": 3,
            "in_channels": "$1",
            "out_channels": 2,
            "features": [4, 4, 4, 4, 4, 4],
        },
    )
    card = card_from_bundle(folder)
    trust(card)
    model = load_model(card, allow_random_weights=True)
    assert type(model.module).__name__ == "BasicUNet" and not (folder / "run.txt").exists()
