"""Tumour segmentation task: geometry, missing contrasts, TTA uncertainty, bad input.

A deterministic stand-in model (one 1x1x1 convolution: WT where normalised FLAIR is
bright, TC/ET where normalised T1c is bright) keeps these tests about the task's plumbing;
the shipped model's accuracy is tested in test_tumor_seg_model.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_brain_dl.core import io
from napari_brain_dl.core.tasks.tumor import segment_tumor
from napari_brain_dl.core.volume import Volume


@pytest.fixture(scope="module")
def exam(data_dir: Path) -> dict[str, Volume]:
    folder = data_dir / "brats_gli_00001"
    return {c: io.load(folder / f"{f}.nii.gz") for c, f in (("FLAIR", "t2f"), ("T1c", "t1c"), ("T1", "t1n"))}


def flipped_to_ras(vol: Volume) -> Volume:
    """The same physical image stored RAS (x and y reversed, affine adjusted)."""
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = [vol.shape[0] - 1, vol.shape[1] - 1]
    return Volume(
        np.ascontiguousarray(vol.data[::-1, ::-1]), vol.affine @ flip, vol.name + "_ras", dict(vol.meta)
    )


def test_labels_land_on_flair_grid_and_follow_the_anatomy(exam: dict[str, Volume], rule_card: str) -> None:
    card = rule_card
    seg = segment_tumor(exam["FLAIR"], exam["T1c"], model=card, device="cpu")
    assert seg.labels.same_grid(exam["FLAIR"]) and seg.labels.data.dtype == np.uint8
    assert set(np.unique(seg.labels.data)) <= {0, 1, 2, 3} and (seg.labels.data == 2).any()
    assert seg.provenance["missing_inputs"] == ["T1", "T2"] and seg.provenance["inputs"]["T1"] is None
    ras = segment_tumor(flipped_to_ras(exam["FLAIR"]), flipped_to_ras(exam["T1c"]), model=card, device="cpu")
    assert ras.labels.axcodes == "RAS"
    np.testing.assert_array_equal(ras.labels.data[::-1, ::-1], seg.labels.data)  # same voxels in space


def test_tta_gives_uncertainty_and_slices_to_review(exam: dict[str, Volume], rule_card: str) -> None:
    seen: list[tuple[int, int]] = []
    seg = segment_tumor(
        exam["FLAIR"],
        exam["T1c"],
        exam["T1"],
        model=rule_card,
        device="cpu",
        tta=True,
        progress=lambda d, t, s: seen.append((d, t)),
    )
    assert seg.uncertainty is not None and seg.uncertainty.same_grid(exam["FLAIR"])
    assert seg.provenance["missing_inputs"] == ["T2"] and len(seg.provenance["tta_flips"]) == 4
    # a 1x1x1 rule is flip-equivariant: the passes agree, nothing to review
    assert float(seg.uncertainty.data.max()) < 1e-4 and seg.review_slices == []
    assert seen[-1][0] == seen[-1][1] and all(d <= t for d, t in seen)


def test_missing_and_empty_inputs_are_refused(exam: dict[str, Volume]) -> None:
    with pytest.raises(ValueError, match="Neither FLAIR nor T1c is given"):
        segment_tumor(None, None, exam["T1"])
    zero = exam["T1c"].with_data(np.zeros(exam["T1c"].shape, np.int16))
    with pytest.raises(ValueError, match="empty"):
        segment_tumor(exam["FLAIR"], zero)


def test_non_brain_image_is_refused(exam: dict[str, Volume]) -> None:
    small = np.zeros((64, 64, 64), np.float32)
    small[20:40, 20:40, 20:40] = 1.0  # a 20 mm cube: not a head
    cube = Volume(small, np.eye(4), "phantom")
    with pytest.raises(ValueError, match="does not look like a brain MRI"):
        segment_tumor(cube, cube)


def test_grids_that_disagree(exam: dict[str, Volume], rule_card: str) -> None:
    card = rule_card
    far = exam["T1c"].with_data(exam["T1c"].data)
    far.affine = far.affine.copy()
    far.affine[:3, 3] += 500.0
    with pytest.raises(ValueError, match="cover different parts of space"):
        segment_tumor(exam["FLAIR"], far, model=card, device="cpu")
    shifted = exam["T1c"].with_data(exam["T1c"].data)
    shifted.affine = shifted.affine.copy()
    shifted.affine[:3, 3] += 2.0  # same exam, other grid: resampled with a note
    seg = segment_tumor(exam["FLAIR"], shifted, model=card, device="cpu")
    assert seg.labels.same_grid(exam["FLAIR"])
    assert any("resampled onto FLAIR's grid" in n for n in seg.notes)


def test_without_t1c_only_the_whole_tumour_is_given(exam: dict[str, Volume], rule_card: str) -> None:
    """FLAIR + T1 (no contrast agent): label 2 only, TC / ET left out with the reason; T2 is set aside."""
    notes: list[str] = []
    seg = segment_tumor(exam["FLAIR"], None, exam["T1"], exam["FLAIR"], model=rule_card, device="cpu",
                        notify=notes.append)
    full = segment_tumor(exam["FLAIR"], exam["T1c"], exam["T1"], model=rule_card, device="cpu")
    labels = np.asarray(seg.labels.data)
    assert seg.labels.same_grid(exam["FLAIR"]) and set(np.unique(labels)) == {0, 2}
    assert (labels > 0).any() and not ((labels > 0) & (np.asarray(full.labels.data) == 0)).any()
    assert set(seg.provenance["regions_left_out"]) == {"TC", "ET"}
    assert "T1c" in seg.provenance["regions_left_out"]["TC"]
    assert seg.provenance["missing_inputs"] == ["T1c", "T2"] and seg.provenance["inputs"]["T2"] is None
    assert any("only the whole tumour" in n for n in seg.notes) and any("T2 is not used" in n for n in notes)
    assert full.provenance["regions_left_out"] == {}


def test_t1c_alone_gives_every_region_on_its_grid(exam: dict[str, Volume], rule_card: str) -> None:
    seg = segment_tumor(None, exam["T1c"], model=rule_card, device="cpu")
    assert seg.labels.same_grid(exam["T1c"]) and seg.provenance["regions_left_out"] == {}
    assert any("No FLAIR" in n for n in seg.notes)
