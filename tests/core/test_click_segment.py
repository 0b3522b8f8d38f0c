"""Click-guided whole-tumour segmentation: the click protocol, orientation, input checks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from napari_brain_dl.core import io
from napari_brain_dl.core.models.registry import resolve_model
from napari_brain_dl.core.tasks.click_segment import (
    ClickSegmenter,
    click_maps,
    click_segment,
    next_click,
    plan_region,
    simulate_clicks,
)
from napari_brain_dl.core.volume import Volume

DATA = Path(
    os.environ.get("NAPARI_BRAIN_DL_TEST_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")
)
# Held out by fold A (WT Dice 0.926, 0.927, 0.929 after clicks 1-3, see the card); the shipped weights
# trained on every labelled FLAIR + T1c exam, this one too (0.931-0.933): a regression floor, not a
# measure of generalisation (no unseen exam with T1c is left).
CASE = DATA / "brats2015_flair_t1c" / "brats_2013_pat0006_1"
DICE_FLOOR_3_CLICKS = 0.90


def _model_ready() -> bool:
    try:
        return resolve_model("brats-tumor-click").available
    except Exception:
        return False


needs_model = pytest.mark.skipif(not _model_ready(), reason="brats-tumor-click weights are not present")


@pytest.fixture(scope="module")
def exam() -> tuple[Volume, Volume, np.ndarray]:
    if not CASE.is_dir():
        pytest.skip(f"test data {CASE} is missing")
    flair = io.load(CASE / "Flair_subtrMeanDivStd.nii.gz")
    t1c = io.load(CASE / "T1c_subtrMeanDivStd.nii.gz")
    ref = np.asarray(io.load(CASE / "OTMultiClass.nii.gz").data) > 0  # labels 1-4: whole tumour
    return flair, t1c, ref


def _ras_flipped(vol: Volume) -> Volume:
    """The same scan with i and j reversed (LPS -> RAS): same voxels in space, other array order."""
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = np.array(vol.shape[:2]) - 1
    return Volume(np.ascontiguousarray(vol.data[::-1, ::-1]), vol.affine @ flip, vol.name + "_ras", {})


def _toy_exam(shape=(48, 48, 40)) -> tuple[Volume, Volume]:
    rng = np.random.default_rng(0)
    data = np.zeros(shape, np.float32)
    data[4:-4, 4:-4, 4:-4] = rng.normal(100, 10, (shape[0] - 8, shape[1] - 8, shape[2] - 8))
    data[18:30, 18:30, 15:25] += 80  # a bright blob
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    return Volume(data, affine, "flair"), Volume(data.copy(), affine, "t1c")


# ----------------------------------------------------------------------------- no data needed
def test_next_click_follows_the_protocol() -> None:
    ref = np.zeros((20, 20, 20), bool)
    ref[2:13, 2:13, 2:13] = True
    assert next_click(np.zeros_like(ref), ref) == ((7, 7, 7), True)  # innermost voxel of the tumour
    pred = ref.copy()
    pred[2:13, 2:13, 2:5] = False  # a missed slab of 363 voxels
    pred[15:19, 15:19, 15:19] = True  # an extra cube of 64 voxels
    idx, positive = next_click(pred, ref)
    assert positive and idx[2] == 3  # the largest error first, at its innermost voxel
    pred[2:13, 2:13, 2:5] = True
    assert next_click(pred, ref) == ((16, 16, 16), False)
    assert next_click(ref, ref) is None


def test_region_grows_with_the_mask_and_stays_in_the_window() -> None:
    one, click = (1.0, 1.0, 1.0), np.array([[60, 60, 60]])
    first = plan_region(one, click)
    assert first.shape == (80, 80, 80) and first.voxel_mm == pytest.approx(128 / 79)  # 128 mm cube
    small = plan_region(one, click, (np.array([50, 50, 50]), np.array([70, 70, 70])))
    assert small.voxel_mm == pytest.approx(80 / 79) and small.shape == (80, 80, 80)  # 80 mm minimum
    big = plan_region(one, click, (np.array([0, 20, 40]), np.array([150, 80, 90])))
    assert max(big.shape) == 80 and big.voxel_mm > 2 and big.shape[1] < 80  # elongated: shorter sides
    lo = big.to_window(np.array([[0, 20, 40]]))[0]
    hi = big.to_window(np.array([[150, 80, 90]]))[0]
    assert np.all(lo >= 0) and np.all(hi <= np.array(big.shape) - 1)  # mask box inside the window
    assert plan_region(one, click, (np.array([50, 50, 50]), np.array([70, 70, 70])), previous=first) is first
    grown = plan_region(one, np.array([[60, 60, 60], [130, 60, 60]]), None, previous=first)
    assert grown.voxel_mm > first.voxel_mm  # a click outside the window grows it
    maps = click_maps((16, 16, 16), np.array([[3.0, 4.0, 5.0]]), np.array([[10.0, 10.0, 10.0]]))
    assert maps[0, 3, 4, 5] == 1.0 and maps[1, 10, 10, 10] == 1.0 and maps[0, 10, 10, 10] < 1e-3


def test_exam_errors_are_one_clear_sentence() -> None:
    flair, t1c = _toy_exam()
    shifted = Volume(t1c.data, t1c.affine @ np.diag([2.0, 1.0, 1.0, 1.0]), "t1c")
    with pytest.raises(ValueError, match="not on the same grid"):
        ClickSegmenter(flair, shifted)
    with pytest.raises(ValueError, match=r"FLAIR .* and T1 .* not on the same grid.* resample T1 onto"):
        ClickSegmenter(flair, shifted, t1c_input="T1")  # T1 standing in is named as such
    with pytest.raises(ValueError, match="FLAIR volume is empty"):
        ClickSegmenter(Volume(np.zeros(flair.shape, np.int16), flair.affine, "flair"), t1c)


@needs_model
def test_click_errors_are_one_clear_sentence() -> None:
    flair, t1c = _toy_exam()
    seg = ClickSegmenter(flair, t1c, device="cpu")
    with pytest.raises(ValueError, match="At least one positive click"):
        seg.update([], [(5, 5, 5)])
    with pytest.raises(ValueError, match=r"positive click \(48, 3, 3\) lies outside the volume"):
        seg.update([(48, 3, 3)])
    with pytest.raises(ValueError, match="negative click"):
        seg.update([(24, 24, 20)], [(-1, 0, 0)])
    with pytest.raises(ValueError, match="three voxel indices"):
        seg.update([(24, 24)])
    mask = click_segment(flair, t1c, [(24, 24, 20)], device="cpu")
    assert mask.same_grid(flair) and mask.data.dtype == np.uint8 and mask.data[24, 24, 20] == 1
    prov = mask.meta["provenance"]
    assert prov["model_id"] == "brats-tumor-click" and len(prov["weights_sha256"]) == 64
    assert prov["clicks"] == {"positive": [[24, 24, 20]], "negative": []} and prov["seconds"] > 0


# ----------------------------------------------------------------------------- real exam
@needs_model
def test_three_clicks_reach_the_dice_floor_on_pat0006(exam) -> None:
    flair, t1c, ref = exam
    seg = ClickSegmenter(flair, t1c, device="cpu")
    steps = simulate_clicks(seg, ref, clicks=3)
    dice = [s["dice"] for s in steps]
    assert max(dice) >= DICE_FLOOR_3_CLICKS, dice
    assert all(s["seconds"] < 5 for s in steps)  # generous: the latency itself is measured in the bench


@needs_model
def test_flipped_copy_gives_the_same_physical_mask(exam) -> None:
    flair, t1c, ref = exam
    flipped = _ras_flipped(flair), _ras_flipped(t1c)
    assert flipped[0].axcodes == "RAS"
    fg = [next_click(np.zeros_like(ref), ref)[0]]
    bg = [(fg[0][0] + 30, fg[0][1], fg[0][2])]

    def to_ras(p: tuple[int, int, int]) -> tuple[int, int, int]:
        return (flair.shape[0] - 1 - p[0], flair.shape[1] - 1 - p[1], p[2])

    for p in fg + bg:  # same physical point
        assert np.allclose(flair.affine @ [*p, 1], flipped[0].affine @ [*to_ras(p), 1])
    a = ClickSegmenter(flair, t1c, device="cpu").update(fg, bg)
    b = ClickSegmenter(*flipped, device="cpu").update([to_ras(p) for p in fg], [to_ras(p) for p in bg])
    assert b.same_grid(flipped[0]) and a.data.sum() > 1000
    np.testing.assert_array_equal(a.data, b.data[::-1, ::-1])
    # raw integers: the z-score is computed inside, so a rescaled copy gives the same mask
    raw = Volume((flair.data * 100 + 2000).astype(np.int16), flair.affine, "flair_raw")
    c = ClickSegmenter(raw, t1c, device="cpu").update(fg, bg)
    assert (c.data == a.data).mean() > 0.999


# ----------------------------------------------------------------------------- every voxel class
GLI = DATA / "brats_gli_00001"
#: The two first clicks of issue 22 that crashed in the paste-back (enhancing rim, oedema).
ISSUE_22_CLICKS = [(140, 101, 64), (174, 153, 64)]


@pytest.fixture(scope="module")
def gli() -> tuple[ClickSegmenter, np.ndarray]:
    if not GLI.is_dir():
        pytest.skip(f"test data {GLI} is missing")
    flair, t1c = io.load(GLI / "t2f.nii.gz"), io.load(GLI / "t1c.nii.gz")
    seg = np.asarray(io.load(GLI / "seg-BraTS23_1.nii.gz").data).astype(int)
    return ClickSegmenter(flair, t1c, device="cpu"), seg


def class_clicks(seg: np.ndarray) -> list[tuple[str, tuple[int, int, int]]]:
    """Where a reader clicks: per class the voxel farthest from the tumour's centre and a middle one."""
    centre = np.argwhere(seg > 0).mean(0)
    out = [("issue-22", p) for p in ISSUE_22_CLICKS]
    for label, name in ((1, "necrosis"), (2, "oedema"), (3, "enhancing rim")):
        idx = np.argwhere(seg == label)
        far = idx[np.argmax(((idx - centre) ** 2).sum(1))]
        out += [(name, tuple(int(v) for v in far)), (name, tuple(int(v) for v in idx[len(idx) // 2]))]
    return out


def border_clicks(shape: tuple[int, ...], centre: np.ndarray) -> list[tuple[int, int, int]]:
    """First, second, second-last and last index on each axis (the others at `centre`), and two corners."""
    out = [(0, 0, 0), tuple(int(n) - 1 for n in shape)]
    for axis, n in enumerate(shape):
        for index in (0, 1, n - 2, n - 1):
            p = [round(float(c)) for c in centre]
            p[axis] = index
            out.append(tuple(p))
    return out  # type: ignore[return-value]


@needs_model
def test_first_click_on_every_tumour_class_gives_a_mask(gli) -> None:
    seg_model, seg = gli
    whole = seg > 0
    for name, voxel in class_clicks(seg):
        assert seg[voxel] > 0, (name, voxel)
        seg_model.reset()
        mask = seg_model.update(fg=[voxel])
        assert mask.same_grid(seg_model.flair), (name, voxel)
        m = np.asarray(mask.data) > 0
        assert m[voxel], (name, voxel)  # a click always wins where it is
        dice = 2 * (m & whole).sum() / (m.sum() + whole.sum())
        assert dice > 0.6, (name, voxel, dice)


@needs_model
def test_first_click_at_the_field_of_view_border_gives_a_mask(gli) -> None:
    seg_model, seg = gli
    for voxel in border_clicks(seg.shape, np.argwhere(seg > 0).mean(0)):
        seg_model.reset()
        mask = seg_model.update(fg=[voxel])
        m = np.asarray(mask.data) > 0
        assert m.shape == seg.shape and m[voxel], voxel
        # a second (negative) click at the opposite border refines without error
        far = tuple(int(n) - 1 - v for v, n in zip(voxel, seg.shape, strict=True))
        again = np.asarray(seg_model.update(fg=[voxel], bg=[far]).data) > 0
        assert again[voxel] and not again[far], voxel
