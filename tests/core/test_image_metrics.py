"""SSIM by scikit-image equals the hand-written SSIMs it replaced (kept here as references)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_brain_dl.core.explain.checks import similarity, ssim3d
from napari_brain_dl.core.image_metrics import dice, image_scores, ssim


def _previous_ssim(x: np.ndarray, y: np.ndarray, data_range: float, blur) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The per-voxel SSIM formula both previous implementations wrote by hand."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def _gaussian(a: np.ndarray) -> np.ndarray:
    return ndimage.gaussian_filter(a, 1.5, truncate=3.5)


def _uniform(a: np.ndarray) -> np.ndarray:
    return ndimage.uniform_filter(a, 7)


@pytest.mark.parametrize("shape", [(40, 48, 36), (12, 20, 30), (11, 11, 11), (3, 9, 30), (8, 8, 8)])
def test_skimage_ssim_equals_the_previous_ones(shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    real = rng.random(shape).cumsum(0)
    pred = real + rng.normal(0, 0.5, shape)
    mask = real > np.median(real)
    span = float(np.ptp(real))
    old = float(_previous_ssim(pred, real, span, _gaussian)[mask].mean())
    assert ssim(pred, real, mask, span) == pytest.approx(old, abs=1e-12)
    a, b = rng.random(shape), rng.random(shape)
    b[: shape[0] // 2] = a[: shape[0] // 2]  # half identical: SSIM well away from 0 and 1
    old3d = float(_previous_ssim(a, b, 1.0, _uniform).mean())
    assert 0.2 < old3d < 0.9
    assert ssim3d(a, b) == pytest.approx(old3d, abs=1e-12)


def test_image_scores_and_similarity_stay_at_their_limits() -> None:
    rng = np.random.default_rng(0)
    real = rng.random((16, 16, 16)).astype(np.float32)
    assert image_scores(2 * real + 1, real).ssim == pytest.approx(1.0)
    assert image_scores(real[::-1].copy(), real, match=False).ssim < 0.2
    brain = np.ones(real.shape, bool)
    assert similarity(real, real, brain) == pytest.approx((1.0, 1.0))


def test_dice_by_monai_equals_the_formula_and_handles_empty_masks() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.random((30, 20, 10)) > 0.6, rng.random((30, 20, 10)) > 0.3
    assert dice(a, b) == pytest.approx(2 * (a & b).sum() / (a.sum() + b.sum()), rel=1e-6)
    small_a, small_b = np.zeros((40, 30, 20), bool), np.zeros((40, 30, 20), bool)
    small_a[5:9, 20:26, 3:7], small_b[7:12, 22:29, 4:6] = True, True  # scored inside their bounding box
    inter = (small_a & small_b).sum()
    assert dice(small_a, small_b) == pytest.approx(2 * inter / (small_a.sum() + small_b.sum()), rel=1e-6)
    labels = np.where(a, 3, 0).astype(np.uint8)  # any non-zero label is inside
    assert dice(labels, a) == pytest.approx(1.0)
    empty = np.zeros_like(a)
    assert dice(empty, empty) == 1.0 and dice(a, empty) == 0.0 and dice(empty, b) == 0.0
    with pytest.raises(ValueError, match="shapes"):
        dice(a, b[:5])
