"""`refine_whole_tumour`: the largest component re-outlined by one automatic click, the rest kept."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
from scipy import ndimage

from napari_brain_dl.core.models.prepost import largest_component
from napari_brain_dl.core.tasks.click_segment import NO_ANSWER
from napari_brain_dl.core.tasks.tumor_cascade import refine_whole_tumour
from napari_brain_dl.core.tasks.tumor_edit import TumourEditor, compose
from napari_brain_dl.core.tasks.tumor_prompts import innermost_voxel
from napari_brain_dl.core.volume import Volume

SHAPE = (40, 40, 30)


def _ball(r: float, centre: tuple[int, int, int]) -> np.ndarray:
    g = np.ogrid[tuple(slice(0, s) for s in SHAPE)]
    return sum((a - c) ** 2 for a, c in zip(g, centre, strict=True)) <= r * r


class FakeClickModel:
    """Logit > 0 in a ball of radius 8 around the click, on a box of the grid (its window)."""

    loaded = SimpleNamespace(card=SimpleNamespace(id="fake-click"), sha256="0" * 64)

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def logits(self, fg: list, bg: list = (), mask: Any = None, cancel: Any = None) -> tuple:
        self.calls.append((list(fg), list(bg)))
        box = (slice(2, 30), slice(2, 30), slice(0, 30))
        logit = np.where(_ball(8, fg[0]), 2.0, -2.0)[box].astype(np.float32)
        return box, logit


def test_the_largest_component_takes_the_click_models_outline() -> None:
    flair = Volume(np.ones(SHAPE, np.float32), np.diag([1.0, 1.0, 2.0, 1.0]), "flair", {})
    big, small = _ball(9, (15, 15, 15)), _ball(2, (34, 34, 15))
    labels = np.where(big | small, 2, 0).astype(np.uint8)
    labels[_ball(3, (15, 15, 15))] = 1  # core at the centre
    labels[_ball(2, (12, 15, 15)) & ~_ball(3, (15, 15, 15))] = 3
    labels[25:, 10:20, 14:16] = 2  # a tongue of the big component beyond the model's window (i >= 30)
    before = labels.copy()
    prob = np.stack([labels == 1, labels > 0, labels == 3]).astype(np.float16) * 0.9
    model = FakeClickModel()
    out, new_prob, info = refine_whole_tumour(labels, flair, flair, prob, 0.5, segmenter=model)
    assert np.array_equal(labels, before)  # inputs untouched
    seed = innermost_voxel(largest_component(labels > 0), (1.0, 1.0, 2.0))
    assert model.calls == [([seed], [])] and info["seed_voxel"] == list(seed) and big[seed]
    window = np.zeros(SHAPE, bool)
    window[2:30, 2:30, :] = True
    ball = _ball(8, seed)
    assert np.array_equal(out[window & ~small] > 0, ball[window & ~small])  # the click model's outline
    assert np.array_equal(out[small], before[small])  # another lesion: as it was
    assert np.array_equal(out[~window], before[~window])  # beyond the window: as it was
    kept = ball & (before > 0)
    assert np.array_equal(out[kept], before[kept])  # core and enhancing kept inside
    assert set(np.unique(out[ball & (before == 0)])) <= {2}  # new voxels are oedema
    assert info["voxels_removed"] == int(((before > 0) & window & ~small & ~ball).sum())
    assert np.array_equal(compose(new_prob, {"TC": .5, "WT": .5, "ET": .5})[window] > 0, out[window] > 0)


def test_no_tumour_comes_back_unchanged() -> None:
    flair = Volume(np.ones(SHAPE, np.float32), np.eye(4), "flair", {})
    labels = np.zeros(SHAPE, np.uint8)
    out, prob, info = refine_whole_tumour(labels, flair, flair, None, segmenter=FakeClickModel())
    assert out is labels and prob is None and not info["applied"]


class SilentClickModel(FakeClickModel):
    """A click model that finds nothing at the click (seen on one cross-validation exam)."""

    def logits(self, fg: list, bg: list = (), mask: Any = None, cancel: Any = None) -> tuple:
        box, logit = super().logits(fg, bg, mask, cancel)
        return box, np.full_like(logit, -3.0)


def test_an_outline_that_disagrees_keeps_the_automatic_one() -> None:
    flair = Volume(np.ones(SHAPE, np.float32), np.eye(4), "flair", {})
    labels = np.where(_ball(9, (15, 15, 15)), 2, 0).astype(np.uint8)
    prob = np.stack([labels * 0, labels > 0, labels * 0]).astype(np.float16)
    out, new_prob, info = refine_whole_tumour(labels, flair, flair, prob, segmenter=SilentClickModel())
    assert out is labels and new_prob is prob and not info["applied"]
    assert info["agreement"] == 0 and "automatic whole tumour is kept" in info["reason"]


class WindowedClickModel(FakeClickModel):
    """Like the real model: an answer near the clicked tumour only, `NO_ANSWER` elsewhere in its box."""

    def logits(self, fg: list, bg: list = (), mask: Any = None, cancel: Any = None) -> tuple:
        box, _ = super().logits(fg, bg, mask, cancel)
        g = np.ogrid[tuple(slice(0, s) for s in SHAPE)]
        dist = np.sqrt(sum((a - c) ** 2.0 for a, c in zip(g, fg[0], strict=True)))
        logit = np.where(dist <= 11, 8.0 - dist, NO_ANSWER)  # > 0 within 8 voxels, its own answer to 11
        return box, logit[box].astype(np.float32)


def test_boundary_steps_after_the_cascade_move_the_outline_by_about_one_layer() -> None:
    flair = Volume(np.ones(SHAPE, np.float32), np.eye(4), "flair", {})
    labels = np.where(_ball(10, (15, 15, 15)), 2, 0).astype(np.uint8)  # wider than the click model's 8
    g = np.ogrid[tuple(slice(0, s) for s in SHAPE)]
    dist = np.sqrt(sum((a - 15.0) ** 2 for a in g))
    prob = np.stack([dist * 0, np.clip(1 - dist / 20, 0, 1), dist * 0]).astype(np.float16)
    out, new_prob, info = refine_whole_tumour(labels, flair, flair, prob, 0.5, segmenter=WindowedClickModel())
    assert info["applied"] and np.array_equal(out > 0, dist < 8)
    for steps in (+1, -1):
        editor = TumourEditor(flair, flair, labels=out, probabilities=new_prob)
        before = editor.labels > 0
        layer = int((ndimage.binary_dilation(before) ^ before).sum() if steps > 0
                    else (before ^ ndimage.binary_erosion(before)).sum())
        editor.boundary("WT", steps)
        moved = int(((editor.labels > 0) ^ before).sum())
        assert 0.5 * layer <= moved <= 2 * layer, (steps, moved, layer)  # never the whole window
