"""`synthesize`: the shipped models beat histogram matching on held-out data; grids, errors, cancel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from toy_volumes import as_ras, toy_head

from napari_brain_dl.core import io
from napari_brain_dl.core.image_metrics import image_scores
from napari_brain_dl.core.models.card import ModelCard
from napari_brain_dl.core.models.prepost import zscore_foreground
from napari_brain_dl.core.progress import Cancelled, CancelToken
from napari_brain_dl.core.resources import resources_dir
from napari_brain_dl.core.synthetic import is_synthetic
from napari_brain_dl.core.tasks.synthesize import (
    brain_quantiles,
    match_quantiles,
    synthesis_methods,
    synthesize,
)
from napari_brain_dl.core.volume import Volume


def scores(pred: np.ndarray, real: np.ndarray, mask: np.ndarray, src: np.ndarray) -> dict[str, dict]:
    """Model vs histogram baselines (oracle: the real target's own histogram)."""
    z = zscore_foreground(src)
    oracle = match_quantiles(z, mask, brain_quantiles(zscore_foreground(real), mask))
    return {"model": image_scores(pred, real, mask).as_dict(),
            "oracle": image_scores(oracle, real, mask).as_dict()}


def _card(card_id: str) -> ModelCard:
    return ModelCard.from_file(resources_dir() / "models" / f"{card_id}.yaml")


@pytest.fixture(scope="module")
def flair_scores(data_dir: Path) -> dict[str, dict]:
    folder = data_dir / "brats2015_flair_t1c" / "brats_2013_pat0006_1"  # never trained on
    t1c = io.load(folder / "T1c_subtrMeanDivStd.nii.gz")
    flair = io.load(folder / "Flair_subtrMeanDivStd.nii.gz")
    syn = synthesize({"T1c": t1c}, "FLAIR", device="cpu")
    assert syn.method == "synth-flair-from-t1c" and syn.sources == ["T1c"] and is_synthetic(syn.image)
    assert syn.image.shape == t1c.shape and np.array_equal(syn.image.affine, t1c.affine)
    mask = (t1c.data > t1c.data.min()) & (flair.data > flair.data.min())
    return scores(syn.image.data, flair.data, mask, t1c.data)


@pytest.fixture(scope="module")
def t2_scores(data_dir: Path) -> dict[str, dict]:
    slab = _card("synth-t2-from-t1").metrics["validation_slab"]  # superior slab, never trained on
    t1 = io.load(data_dir / "brats_gli_00001" / "t1n.nii.gz")
    t2 = io.load(data_dir / "brats_gli_00001" / "t2w.nii.gz")
    syn = synthesize({"t1": t1}, "t2", method="synth-t2-from-t1", device="cpu")
    mask = (t1.data > 0) & (t2.data > 0)
    keep = np.zeros(mask.shape, bool)
    keep[:, :, slab["start"]: slab["stop"]] = True
    return scores(syn.image.data, t2.data, mask & keep, t1.data)


PAIRS = [("flair_scores", "synth-flair-from-t1c"), ("t2_scores", "synth-t2-from-t1")]


@pytest.mark.parametrize(("fixture", "card_id"), PAIRS)
def test_model_beats_histogram_and_card_tells_the_truth(
    request: pytest.FixtureRequest, fixture: str, card_id: str
) -> None:
    result = request.getfixturevalue(fixture)
    model, oracle = result["model"], result["oracle"]
    assert model["psnr"] > oracle["psnr"] and model["ssim"] > oracle["ssim"] and model["mae"] < oracle["mae"]
    metrics = _card(card_id).metrics
    assert metrics["model"]["psnr"] == pytest.approx(model["psnr"], abs=0.05)
    assert metrics["histogram_oracle"]["psnr"] == pytest.approx(oracle["psnr"], abs=0.05)


@pytest.mark.parametrize(
    ("fixture", "card_id"),
    [
        PAIRS[0],
        pytest.param(*PAIRS[1], marks=pytest.mark.xfail(
            strict=True, reason="not met yet for T2 from T1 (+0.3 dB on the held-out slab, see the card); "
            "remove this mark once it is")),
    ],
)
def test_done_criterion_3db_over_histogram(
    request: pytest.FixtureRequest, fixture: str, card_id: str
) -> None:
    result = request.getfixturevalue(fixture)
    assert result["model"]["psnr"] >= result["oracle"]["psnr"] + 3.0, result
    assert result["model"]["ssim"] > result["oracle"]["ssim"], result
    assert _card(card_id).metrics["psnr_gain_over_best_histogram_db"] >= 3.0


def test_methods_for_the_widget() -> None:
    assert synthesis_methods(["t1c"], "flair") == ["synth-flair-from-t1c", "histogram"]
    assert synthesis_methods(["T1", "T1c"], "T2") == ["synth-t2-from-t1", "histogram"]
    assert synthesis_methods(["FLAIR"], "T2") == ["histogram"]
    assert synthesis_methods(["FLAIR", "T1c"], "FLAIR") == []


def test_output_on_first_source_grid_even_when_the_second_is_ras() -> None:
    lps, other = toy_head(0), as_ras(toy_head(1))
    assert lps.axcodes == "LPS" and other.axcodes == "RAS"
    syn = synthesize({"T1c": lps, "T1": other}, "FLAIR", method="histogram")
    assert syn.image.shape == lps.shape and np.array_equal(syn.image.affine, lps.affine)
    assert syn.image.meta["synthetic"] is True and syn.image.name == "FLAIR (synthetic)"
    assert syn.image.meta["synthesis"]["method"] == "histogram" and syn.provenance["synthetic"] is True
    back = synthesize({"T1": other, "T1c": lps}, "FLAIR", method="histogram")  # first given = RAS grid
    assert back.image.shape == other.shape and np.array_equal(back.image.affine, other.affine)
    assert any("reordered" in n and "exact" in n for n in back.notes)  # a flip apart: no interpolation
    assert np.allclose(back.image.data[::-1, ::-1], syn.image.data, atol=1e-4)  # same image, both grids


def test_model_output_on_ras_grid_matches_lps(data_dir: Path) -> None:
    lps = toy_head(2)
    a = synthesize({"T1c": lps}, "FLAIR", method="synth-flair-from-t1c", device="cpu").image
    b = synthesize({"T1c": as_ras(lps)}, "FLAIR", method="synth-flair-from-t1c", device="cpu").image
    assert np.array_equal(b.affine, as_ras(lps).affine)
    assert np.allclose(b.data[::-1, ::-1], a.data, atol=1e-3)
    outside = a.data[lps.data == 0]
    assert (outside == a.data[lps.data > 0].min()).all()  # the darkest brain value outside the head


def test_target_already_present() -> None:
    with pytest.raises(ValueError, match="already present"):
        synthesize({"FLAIR": toy_head(0), "T1c": toy_head(1)}, "flair")


def test_2d_input_is_refused() -> None:
    flat = Volume(np.ones((120, 120, 1), np.float32), np.eye(4), name="slice")
    with pytest.raises(ValueError, match="2D"):
        synthesize({"T1c": flat}, "FLAIR", method="histogram")


def test_missing_source_for_the_model() -> None:
    with pytest.raises(ValueError, match="needs T1c"):
        synthesize({"T1": toy_head(0)}, "FLAIR", method="synth-flair-from-t1c")


def test_sources_in_different_space() -> None:
    far = toy_head(1)
    far.affine[:3, 3] += 400.0
    with pytest.raises(ValueError, match="different parts of space"):
        synthesize({"T1c": toy_head(0), "T1": far}, "FLAIR", method="histogram")


def test_unknown_contrast_and_no_source() -> None:
    with pytest.raises(ValueError, match="Unknown contrast"):
        synthesize({"T1c": toy_head(0)}, "PD")
    with pytest.raises(ValueError, match="at least one"):
        synthesize({"T1c": None}, "FLAIR")


def test_cancel_stops_the_model() -> None:
    token = CancelToken()
    seen: list[str] = []

    def progress(done: float, total: float, text: str) -> None:
        seen.append(text)
        token.cancel()

    with pytest.raises(Cancelled):
        synthesize({"T1c": toy_head(0)}, "FLAIR", method="synth-flair-from-t1c", device="cpu",
                   progress=progress, cancel=token)
    assert seen
