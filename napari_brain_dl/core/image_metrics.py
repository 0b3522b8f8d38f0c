"""Image-similarity metrics inside a mask (PSNR, SSIM, MAE) and the Dice overlap of masks.

One definition for synthesis and super-resolution, benches and tests alike:
the intensity range is the 0.5-99.5 percentile range of the *real* image inside
the mask, and (for synthesis, whose output units are arbitrary) the prediction
is first matched to the real image by a least-squares line inside the mask.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ImageScores:
    """PSNR (dB), SSIM (0-1) and MAE (fraction of the intensity range) inside a mask."""

    psnr: float
    ssim: float
    mae: float

    def as_dict(self, digits: int = 4) -> dict[str, float]:
        """Rounded values for JSON."""
        return {k: round(float(v), digits) for k, v in asdict(self).items()}


def linear_match(pred: np.ndarray, real: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`a * pred + b` with (a, b) the least-squares fit to `real` inside `mask`."""
    p = pred[mask].astype(np.float64)
    r = real[mask].astype(np.float64)
    design = np.stack([p, np.ones_like(p)], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, r, rcond=None)
    return (a * pred.astype(np.float64) + b).astype(np.float32)


def intensity_range(real: np.ndarray, mask: np.ndarray) -> float:
    """0.5-99.5 percentile range of `real` inside `mask` (1.0 when flat)."""
    lo, hi = np.percentile(real[mask], [0.5, 99.5])
    return float(hi - lo) if hi > lo else 1.0


def psnr(pred: np.ndarray, real: np.ndarray, mask: np.ndarray, data_range: float) -> float:
    """Peak signal-to-noise ratio inside `mask` for the given range."""
    mse = float(np.mean((pred[mask].astype(np.float64) - real[mask].astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range**2 / mse))


def ssim_map(a: np.ndarray, b: np.ndarray, data_range: float, *, sigma: float | None = 1.5,
             size: int = 7) -> np.ndarray:
    """Per-voxel SSIM (Wang et al. 2004 constants) by scikit-image's `structural_similarity`.

    Gaussian window of `sigma` (truncated at 3.5 sigma), or a uniform window of side `size` when
    `sigma` is None; population covariances; borders reflected, not cropped (callers average the
    map where they need it). Images smaller than the window are padded by reflection first.
    """
    from skimage.metrics import structural_similarity

    gaussian = sigma is not None
    win = 2 * int(3.5 * sigma + 0.5) + 1 if sigma is not None else int(size)
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    pad = win // 2 if min(x.shape) < win else 0
    if pad:
        x, y = np.pad(x, pad, mode="symmetric"), np.pad(y, pad, mode="symmetric")
    _, s = structural_similarity(x, y, win_size=win, data_range=data_range, gaussian_weights=gaussian,
                                 sigma=sigma or 1.5, use_sample_covariance=False, full=True)
    return s[(slice(pad, -pad),) * s.ndim] if pad else s


def ssim(pred: np.ndarray, real: np.ndarray, mask: np.ndarray, data_range: float,
         sigma: float = 1.5) -> float:
    """Mean structural similarity over `mask` (Gaussian window, Wang et al. 2004 constants)."""
    return float(ssim_map(pred, real, data_range, sigma=sigma)[mask].mean())


def image_scores(pred: np.ndarray, real: np.ndarray, mask: np.ndarray | None = None, *,
                 match: bool = True) -> ImageScores:
    """PSNR, SSIM and MAE of `pred` against `real` inside `mask` (default: real > its minimum).

    Args:
        pred: Predicted image, same shape as `real`.
        real: The acquired image it should equal.
        mask: Voxels to score (the brain for synthesis, the head for super-resolution).
        match: Fit `pred` to `real` with a line inside the mask first (synthesis: its units are
            arbitrary). Leave False when both share units (super-resolution vs the original).

    Example:
        >>> real = np.random.default_rng(0).random((8, 8, 8)).astype(np.float32)
        >>> image_scores(2 * real + 1, real).psnr > 100
        True
    """
    pred = np.asarray(pred, np.float32)
    real = np.asarray(real, np.float32)
    if pred.shape != real.shape:
        raise ValueError(f"Cannot compare images of shapes {pred.shape} and {real.shape}.")
    mask = real > real.min() if mask is None else np.asarray(mask, bool)
    if not mask.any():
        raise ValueError("The mask to score inside is empty.")
    if match:
        pred = linear_match(pred, real, mask)
    data_range = intensity_range(real, mask)
    mae = float(np.mean(np.abs(pred[mask] - real[mask]))) / data_range
    return ImageScores(psnr(pred, real, mask, data_range), ssim(pred, real, mask, data_range), mae)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two masks (non-zero = inside) by MONAI's `compute_dice`; 1.0 when both are empty.

    Example:
        >>> round(dice(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0])), 4)
        0.6667
    """
    import torch
    from monai.metrics import compute_dice

    a, b = np.asarray(a) != 0, np.asarray(b) != 0
    if a.shape != b.shape:
        raise ValueError(f"Cannot compare masks of shapes {a.shape} and {b.shape}.")
    either = a | b
    box = tuple(  # voxels outside both masks add nothing: score their bounding box only
        slice(int(idx[0]), int(idx[-1]) + 1) if len(idx) else slice(0, 0)
        for idx in (np.flatnonzero(either.any(axis=tuple(k for k in range(a.ndim) if k != ax)))
                    for ax in range(a.ndim))
    )
    pred, ref = (torch.from_numpy(np.ascontiguousarray(m[box]))[None, None].double() for m in (a, b))
    return float(compute_dice(pred, ref, ignore_empty=False)[0, 0])  # (batch, channel, ...) tensors
