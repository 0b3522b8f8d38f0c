"""Tumour editing: boundary steps, strokes, box / lasso, hand edits, one undo / redo history."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import ndimage

from napari_brain_dl.core import io
from napari_brain_dl.core.image_metrics import dice
from napari_brain_dl.core.models.registry import resolve_model
from napari_brain_dl.core.tasks.tumor_edit import TumourEditor, check_labels, compose
from napari_brain_dl.core.volume import Volume

DATA = Path(
    os.environ.get("NAPARI_BRAIN_DL_TEST_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")
)
# held out by brats-tumor-seg; the click model trained on it
CASE = DATA / "brats2015_flair_t1c" / "brats_2013_pat0006_1"
SHAPE = (48, 48, 40)


def _ball(r: float, centre=(24, 24, 20)) -> np.ndarray:
    g = np.ogrid[tuple(slice(0, s) for s in SHAPE)]
    return sum((a - c) ** 2 for a, c in zip(g, centre, strict=True)) <= r * r


def _exam() -> tuple[Volume, np.ndarray, np.ndarray]:
    """FLAIR, expert-like labels (ET rim, necrotic centre, oedema) and probabilities with a spurious shell."""
    flair = Volume(
        np.random.default_rng(0).normal(100, 5, SHAPE).astype(np.float32),
        np.diag([-1.0, -1.0, 1.0, 1.0]),
        "flair",
        {},
    )
    truth = np.where(_ball(10), 2, 0)
    truth[_ball(6)] = 3
    truth[_ball(3)] = 1
    # probabilities: WT reaches two voxels too far (a shell), TC / ET right
    wt_dist = ndimage.distance_transform_edt(~_ball(12)) - ndimage.distance_transform_edt(_ball(12))
    prob = np.stack(
        [
            _ball(6).astype(np.float32) * 0.9,
            1 / (1 + np.exp(wt_dist)),
            (_ball(6) & ~_ball(3)).astype(np.float32) * 0.8,
        ]
    ).astype(np.float16)
    return flair, truth.astype(np.uint8), prob


def test_starts_at_the_given_labels_and_boundary_steps_move_one_layer() -> None:
    flair, truth, prob = _exam()
    auto = compose(prob, {"TC": 0.5, "WT": 0.5, "ET": 0.5})
    ed = TumourEditor(flair, labels=auto, probabilities=prob)
    assert np.array_equal(ed.labels, auto)
    assert dice(ed.labels > 0, truth > 0) < 0.75
    ed.boundary("WT", -1)
    one = ed.labels.copy()
    layer = (auto > 0) & ~(one > 0)
    assert layer.any() and not layer[_ball(10)].any()  # one layer off the outside only
    ed.boundary("WT", -1)
    assert dice(ed.labels > 0, truth > 0) > 0.95  # the shell is gone
    assert np.array_equal(ed.labels[_ball(7)], truth[_ball(7)])  # sub-regions kept
    ed.undo()
    ed.undo()
    assert np.array_equal(ed.labels, auto)
    ed.redo()
    assert np.array_equal(ed.labels, one)


def test_labels_alone_give_outline_steps_like_erosion_and_dilation() -> None:
    flair, truth, _ = _exam()
    ed = TumourEditor(flair, labels=truth)
    ed.boundary("ET", 1)
    et = ed.labels == 3
    assert et.sum() > (truth == 3).sum() and np.all(et <= ndimage.binary_dilation(truth == 3, iterations=1))
    ed.boundary("ET", -1)
    assert np.array_equal(ed.labels, truth)


def test_negative_scribble_across_a_shell_removes_it_and_keeps_the_core() -> None:
    flair, truth, prob = _exam()
    ed = TumourEditor(flair, labels=compose(prob, {"TC": 0.5, "WT": 0.5, "ET": 0.5}), probabilities=prob)
    # a stroke from outside the mask to two voxels deep, on one axial slice
    ed.scribble([[24, 38, 20], [24, 34, 20]], positive=False, radius_mm=0.5, reach_mm=40)
    assert dice(ed.labels > 0, truth > 0) > 0.95
    assert np.array_equal(ed.labels[_ball(7)], truth[_ball(7)])
    ed.undo()
    ed.scribble([[24, 38, 20], [24, 34, 20]], positive=False, radius_mm=0.5, reach_mm=8)
    removed = (compose(prob, {"TC": 0.5, "WT": 0.5, "ET": 0.5}) > 0) & ~(ed.labels > 0)
    assert removed.any() and not removed[24, 24 - 12, 20]  # only near the stroke


def test_positive_scribble_adds_the_missed_band_with_oedema() -> None:
    flair, truth, _ = _exam()
    small = np.where(_ball(9) | (truth != 2), truth, 0).astype(np.uint8)
    ed = TumourEditor(flair, labels=small)
    ed.scribble([[24, 31, 20], [24, 34, 20]], positive=True, radius_mm=0.5, reach_mm=40)
    assert dice(ed.labels > 0, truth > 0) > 0.95
    added = (ed.labels > 0) & (small == 0)
    assert added.sum() > 300 and set(np.unique(ed.labels[added]).tolist()) == {2}  # oedema
    with pytest.raises(ValueError, match="does not cross"):
        ed.scribble([[2, 2, 2], [3, 3, 3]], positive=False)
    before = ed.labels.copy()
    ed.scribble([[2, 2, 2], [2, 2, 5]], positive=True, radius_mm=0.5)  # away from the tumour: the stroke only
    assert int(((ed.labels > 0) & ~(before > 0)).sum()) == 4


def test_lasso_is_followed_on_its_slice_and_neighbours_adapt() -> None:
    flair, truth, _ = _exam()
    ed = TumourEditor(flair, labels=truth)
    square = [[16, 16, 20], [16, 30, 20], [30, 30, 20], [30, 16, 20]]
    ed.lasso(square)
    plane = ed.labels[:, :, 20] > 0
    want = np.zeros(SHAPE[:2], bool)
    want[16:31, 16:31] = True
    assert np.array_equal(plane, want)
    assert np.array_equal(ed.labels[:, :, 20][_ball(3)[:, :, 20]], truth[:, :, 20][_ball(3)[:, :, 20]])
    near = ed.labels[:, :, 22] > 0
    assert not near[10, 24] and near[24, 24]  # 2 mm away: outside the square by > 2 mm is removed
    assert (ed.labels[:, :, 5] > 0).sum() == (truth[:, :, 5] > 0).sum()  # beyond reach: untouched
    ed.undo()
    assert np.array_equal(ed.labels, truth)


def test_box_bounds_the_tumour_on_its_slice() -> None:
    flair, truth, _ = _exam()
    ed = TumourEditor(flair, labels=truth)
    ed.box([14, 20, 20], [34, 40, 20])
    plane = ed.labels[:, :, 20] > 0
    assert plane.any() and not plane[:, :20].any() and np.array_equal(plane[:, 20:], truth[:, 20:, 20] > 0)


def test_hand_edits_and_interactions_share_one_history() -> None:
    flair, _, prob = _exam()
    ed = TumourEditor(flair, labels=compose(prob, {"TC": 0.5, "WT": 0.5, "ET": 0.5}), probabilities=prob)
    states = [ed.labels.copy()]
    painted = ed.labels.copy()
    painted[2:5, 2:5, 2:5] = 2
    ed.apply_labels(painted)
    states.append(ed.labels.copy())
    ed.boundary("WT", -2)
    states.append(ed.labels.copy())
    assert ed.labels[3, 3, 3] == 2  # a painted voxel stays through boundary steps
    ed.scribble([[24, 38, 20], [24, 33, 20]], positive=False, radius_mm=0.5)
    states.append(ed.labels.copy())
    for want in states[-2::-1]:
        assert ed.undo() and np.array_equal(ed.labels, want)
    assert not ed.undo()
    for want in states[1:]:
        assert ed.redo() and np.array_equal(ed.labels, want)
    assert [e["what"] for e in ed.volume().meta["provenance"]["interactions"]][:3] == [
        "hand edit",
        "boundary WT -2",
        "scribble WT -",
    ]


def test_bad_input_is_one_sentence_and_changes_nothing() -> None:
    flair, truth, _ = _exam()
    other = Volume(truth, np.diag([-2.0, -1.0, 1.0, 1.0]), "labels", {})
    with pytest.raises(ValueError, match="not on the exam's grid"):
        TumourEditor(flair, labels=other)
    ed = TumourEditor(flair, labels=truth)
    for call in (
        lambda: ed.lasso([[1, 1, 1], [1, 5, 1]]),
        lambda: ed.box([2, 3, 4], [2, 3, 4]),
        lambda: ed.scribble([[1, 1, 1], [60, 1, 1]], False),
        lambda: ed.click([0, 0, 99]),
        lambda: ed.apply_labels(np.full(SHAPE, 7)),
    ):
        with pytest.raises(ValueError):
            call()
    assert np.array_equal(ed.labels, truth) and not ed.can_undo


def _model_ready() -> bool:
    try:
        return resolve_model("brats-tumor-click").available
    except Exception:
        return False


@pytest.mark.skipif(not _model_ready() or not CASE.is_dir(), reason="click weights or test data missing")
def test_clicks_refine_labels_and_keep_sub_regions_on_pat0006() -> None:
    flair = io.load(CASE / "Flair_subtrMeanDivStd.nii.gz")
    t1c = io.load(CASE / "T1c_subtrMeanDivStd.nii.gz")
    raw = np.rint(np.asarray(io.load(CASE / "OTMultiClass.nii.gz").data)).astype(int)
    ref = np.array([0, 1, 2, 1, 3], np.uint8)[raw]
    ed = TumourEditor(flair, t1c, device="cpu")
    with pytest.raises(ValueError, match="positive click"):
        ed.click((120, 120, 70), positive=False)
    inner = tuple(
        int(v)
        for v in np.argwhere(
            ndimage.distance_transform_edt(ref > 0) == ndimage.distance_transform_edt(ref > 0).max()
        )[0]
    )
    ed.click(inner, positive=True)
    first = dice(ed.labels > 0, ref > 0)
    assert first > 0.85 and set(np.unique(ed.labels).tolist()) == {0, 2}  # from nothing: whole tumour
    # from a labelled start one voxel layer too large: a negative click in that shell removes part
    # of it and keeps the sub-regions
    big = np.where((ref == 0) & ndimage.binary_dilation(ref > 0, iterations=2), 2, ref).astype(np.uint8)
    ed2 = TumourEditor(flair, t1c, labels=big, segmenter=ed.segmenter())
    shell = (big > 0) & (ref == 0)
    at = tuple(int(v) for v in np.argwhere(shell)[len(np.argwhere(shell)) // 2])
    before = dice(ed2.labels > 0, ref > 0)
    ed2.click(at, positive=False)
    assert ed2.labels[at] == 0 and dice(ed2.labels > 0, ref > 0) > before
    kept = (ed2.labels > 0) & (ref > 0)
    assert np.array_equal(ed2.labels[kept], ref[kept])  # sub-regions kept where tumour stays
    ed2.undo()
    assert np.array_equal(ed2.labels, big)


@pytest.mark.parametrize(
    ("values", "dtype", "expect"),
    [
        ([0, 1, 2, 3], np.uint8, [0, 1, 2, 3]),
        ([0, 1, 2, 4], np.uint8, [0, 1, 2, 3]),  # BraTS 2018: 4 = enhancing
        ([0, 1, 2, 4], np.uint16, [0, 1, 2, 3]),
        ([0, 2, 3], np.float32, [0, 2, 3]),
        ([0, 1], bool, [0, 1]),
        ([0, 1, 5], np.uint8, "only BraTS labels 0-3"),
        ([0, 1, 300], np.uint16, "only BraTS labels 0-3"),
        ([0, -1, 2], np.int16, "only BraTS labels 0-3"),
        ([0, 0.5, 2], np.float32, "whole numbers"),
        ([0, np.nan, 2], np.float32, "whole numbers"),
    ],
)
def test_check_labels_accepts_brats_values_only(values: list[float], dtype: type, expect: Any) -> None:
    reference = Volume(np.zeros((4, 4, 4), np.float32), np.eye(4), "flair", {})
    data = np.zeros((4, 4, 4), dtype)
    data.flat[: len(values)] = np.asarray(values).astype(dtype)
    if isinstance(expect, str):
        with pytest.raises(ValueError, match=expect):
            check_labels(data, reference)
        return
    out = check_labels(data, reference)
    assert out.dtype == np.uint8 and sorted(np.unique(out).tolist()) == expect


class _AnswersNo:
    """A click model that sees tumour only in a ball away from the clicks (logit > 0 there)."""

    def logits(self, fg: Any, bg: Any = (), mask: Any = None, cancel: Any = None) -> tuple:
        box = tuple(slice(0, s) for s in SHAPE)
        return box, np.where(_ball(4, (10, 10, 10)), 3.0, -3.0).astype(np.float32)


def test_a_click_the_model_overrules_edits_what_looks_like_the_click_and_says_so() -> None:
    """A dark cavity the model does not see: a positive click in it adds the cavity (the voxels
    connected to the click that look like it), nothing else; a negative click where the model
    still sees tumour removes the look-alike voxels around it."""
    rng = np.random.default_rng(1)
    data = np.zeros(SHAPE, np.float32)  # the background outside the head
    data[2:-2, 2:-2, 2:-2] = rng.normal(100, 0.5, (SHAPE[0] - 4, SHAPE[1] - 4, SHAPE[2] - 4))
    cavity = np.zeros(SHAPE, bool)
    cavity[20:29, 20:29, 16:25] = True
    data[cavity] = 40
    flair = Volume(data, np.eye(4), "flair", {})
    ed = TumourEditor(flair, flair, segmenter=_AnswersNo())
    entry = ed.click((24, 24, 20), positive=True)
    assert np.array_equal(ed.labels > 0, cavity) and set(np.unique(ed.labels[cavity])) == {2}
    assert "sees no tumour here" in entry["note"] and entry["changed"] == cavity.sum()
    entry = ed.click((10, 10, 10), positive=True)  # where the model agrees: its outline, no note
    assert "note" not in entry and (ed.labels > 0)[_ball(4, (10, 10, 10))].all()
    entry = ed.click((10, 10, 10), positive=False)
    assert "still sees tumour here" in entry["note"]
    assert not (ed.labels > 0)[_ball(4, (10, 10, 10))].any() and np.array_equal(ed.labels > 0, cavity)
    ed.undo()
    assert (ed.labels > 0)[_ball(4, (10, 10, 10))].all()


def test_t1_standing_in_for_t1c_is_said_on_the_first_click_only() -> None:
    """On an exam without T1c the first click says T1 stands in for the click model's T1c."""
    from napari_brain_dl.core.tasks.click_segment import T1_FOR_T1C, click_t1c_input

    assert click_t1c_input(["FLAIR", "T1c", "T1"]) == "T1c" and click_t1c_input(["FLAIR", "T1"]) == "T1"
    assert click_t1c_input(["FLAIR", "T2"]) is None
    flair = Volume(np.full(SHAPE, 100, np.float32), np.eye(4), "flair", {})
    ed = TumourEditor(flair, flair, segmenter=_AnswersNo(), t1c_input="T1")
    first = ed.click((10, 10, 10), positive=True)
    assert first["note"] == T1_FOR_T1C
    assert "note" not in ed.click((11, 10, 10), positive=True)
    plain = TumourEditor(flair, flair, segmenter=_AnswersNo())
    assert "note" not in plain.click((10, 10, 10), positive=True)
    with pytest.raises(ValueError, match="T1c \\(or T1 in its place\\)"):
        TumourEditor(flair).click((10, 10, 10))
