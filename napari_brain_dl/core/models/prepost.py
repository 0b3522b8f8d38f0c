"""Invertible preprocessing and postprocessing steps used by the engine.

Geometry: the input is first reoriented by an exact axis permutation
(`volume.reorient`), then, when the card asks for a fixed grid ("conform") or
voxel size ("resample"), resampled onto a grid sharing the reoriented axes and
the input's centre. Each resampling keeps both affines so the model output is
mapped back onto the input's own grid with the exact inverse voxel mapping.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from ..volume import voxel_spacing


@dataclass
class GridMap:
    """Source grid (reoriented input) and model grid; identity when they coincide."""

    src_shape: tuple[int, int, int]
    src_affine: np.ndarray
    dst_shape: tuple[int, int, int]
    dst_affine: np.ndarray

    @property
    def identity(self) -> bool:
        return self.src_shape == self.dst_shape and np.allclose(self.src_affine, self.dst_affine, atol=1e-4)

    def forward(self, data: np.ndarray, order: int = 1) -> np.ndarray:
        """Resample source-grid data (C, ...) onto the model grid."""
        return (
            data
            if self.identity
            else _resample(data, self.src_affine, self.dst_affine, self.dst_shape, order)
        )

    def inverse(self, data: np.ndarray, order: int = 1) -> np.ndarray:
        """Resample model-grid data (C, ...) back onto the source grid."""
        return (
            data
            if self.identity
            else _resample(data, self.dst_affine, self.src_affine, self.src_shape, order)
        )


def _resample(
    data: np.ndarray, src_affine: np.ndarray, dst_affine: np.ndarray, shape: tuple[int, ...], order: int
) -> np.ndarray:
    """Pull each channel of `data` onto a grid (world-space mapping, zero outside)."""
    m = np.linalg.inv(src_affine) @ dst_affine
    out = np.empty((data.shape[0], *shape), dtype=np.float32 if order else data.dtype)
    for c in range(data.shape[0]):
        ndimage.affine_transform(
            data[c],
            m[:3, :3],
            offset=m[:3, 3],
            output_shape=shape,
            output=out[c],
            order=order,
            mode="constant",
            cval=0.0,
            prefilter=False,
        )
    return out


def target_grid(shape: tuple[int, ...], affine: np.ndarray, step: dict[str, Any]) -> GridMap:
    """Model grid for a conform/resample step, centred on the input's centre.

    ``conform``: fixed shape (e.g. 256^3) and spacing; ``resample``: spacing only.
    An input already on such a grid (shape and spacing equal) is left untouched.
    """
    src_shape = tuple(int(s) for s in shape[-3:])
    spacing = np.asarray(step.get("spacing", 1.0), dtype=float) * np.ones(3)
    src_spacing = voxel_spacing(affine)
    if step["op"] == "conform":
        dst_shape = tuple(int(s) for s in np.broadcast_to(step.get("shape", 256), (3,)))
    else:
        dst_shape = tuple(
            max(1, round(n * s / t)) for n, s, t in zip(src_shape, src_spacing, spacing, strict=True)
        )
    if dst_shape == src_shape and np.allclose(src_spacing, spacing, atol=1e-3):
        return GridMap(src_shape, affine, src_shape, affine)  # type: ignore[arg-type]
    directions = affine[:3, :3] / src_spacing
    centre = affine @ np.append((np.asarray(src_shape) - 1) / 2.0, 1.0)
    dst = np.eye(4)
    dst[:3, :3] = directions * spacing
    dst[:3, 3] = centre[:3] - dst[:3, :3] @ ((np.asarray(dst_shape) - 1) / 2.0)
    return GridMap(src_shape, affine, dst_shape, dst)  # type: ignore[arg-type]


def intensity(data: np.ndarray, step: dict[str, Any]) -> np.ndarray:
    """Apply a scale / zscore / clip step to (C, ...) float32 data, in place where possible.

    - ``scale``: min-max (or percentiles ``low_pct``/``high_pct``) to [low, high];
    - ``zscore``: per channel, over non-zero voxels when ``nonzero`` (MONAI NormalizeIntensity);
    - ``clip``: to [min, max];
    - ``zscore_foreground``: see `zscore_foreground` (raw or already z-scored skull-stripped scans).
    """
    op = step["op"]
    for c in range(data.shape[0]):
        x = data[c]
        if op == "scale":
            lo_p, hi_p = float(step.get("low_pct", 0.0)), float(step.get("high_pct", 100.0))
            lo, hi = (
                (float(x.min()), float(x.max()))
                if (lo_p, hi_p) == (0.0, 100.0)
                else tuple(float(v) for v in np.percentile(x, [lo_p, hi_p]))
            )
            a, b = float(step.get("low", 0.0)), float(step.get("high", 1.0))
            x -= lo
            x *= (b - a) / (hi - lo) if hi > lo else 0.0
            x += a
            if (lo_p, hi_p) != (0.0, 100.0):
                np.clip(x, a, b, out=x)
        elif op == "zscore":
            sel = x != 0 if step.get("nonzero", True) else np.ones(x.shape, bool)
            if sel.any():
                mean, std = float(x[sel].mean()), float(x[sel].std())
                x[sel] = (x[sel] - mean) / (std if std > 0 else 1.0)
        elif op == "clip":
            np.clip(x, step.get("min"), step.get("max"), out=x)
        elif op == "zscore_foreground":
            data[c] = zscore_foreground(x, float(step.get("clip", 5.0)))
        else:
            raise ValueError(f"Unknown preprocessing step {op!r}.")
    return data


def zscore_foreground(x: np.ndarray, clip: float = 5.0) -> np.ndarray:
    """Z-score over the foreground of a skull-stripped scan; background becomes 0.

    The background is the value the scan takes most outside the head: its minimum
    (0 for raw integer scans, a negative constant for scans z-scored inside the brain).
    When the minimum is rare (resampling ringing leaves negative values inside the brain
    while the background stays 0), the background is the commonest value on the volume's
    faces instead. Mean and standard deviation come from foreground voxels between the
    0.5 and 99.5 percentiles, so a few bright vessels do not set the scale. An
    all-constant (missing) channel stays all zero.
    """
    x = np.asarray(x, dtype=np.float32)
    fg = _foreground(x)
    out = np.zeros_like(x)
    if fg.sum() < 16:
        return out
    vals = x[fg]
    lo, hi = np.percentile(vals, [0.5, 99.5])  # all voxels: the result must not depend on their order
    core = vals[(vals >= lo) & (vals <= hi)]
    std = float(core.std()) or 1.0
    out[fg] = np.clip((vals - float(core.mean())) / std, -clip, clip)
    return out


def _foreground(x: np.ndarray) -> np.ndarray:
    """Voxels that differ from the background value (see `zscore_foreground`)."""
    low = float(x.min())
    fg = x > low
    if x.size and np.count_nonzero(~fg) < 0.05 * x.size and x.ndim == 3:
        faces = np.concatenate([f.ravel() for a in range(3) for f in (np.take(x, 0, a), np.take(x, -1, a))])
        values, counts = np.unique(faces, return_counts=True)
        mode = float(values[np.argmax(counts)])
        if np.count_nonzero(x == mode) > 0.2 * x.size:
            fg = x != mode
    return fg


def foreground_bbox(data: np.ndarray, margin: int = 8, divisible: int = 1) -> tuple[slice, slice, slice]:
    """Bounding box of the head: voxels above 2 % of the robust range, plus `margin`.

    Falls back to the whole grid when nothing stands out. With `divisible`, the
    box grows (within the grid) so each side is a multiple of it when possible.
    """
    x = np.abs(data).max(axis=0) if data.ndim == 4 else np.abs(data)
    lo, hi = float(x.min()), float(np.percentile(x[::2, ::2, ::2], 99.5))
    mask = x > lo + 0.02 * (hi - lo)
    if not mask.any():
        return tuple(slice(0, n) for n in x.shape)  # type: ignore[return-value]
    slices = []
    for axis, n in enumerate(x.shape):
        nz = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        start, stop = max(0, int(nz[0]) - margin), min(n, int(nz[-1]) + 1 + margin)
        if divisible > 1:
            need = -(-(stop - start) // divisible) * divisible
            start = max(0, min(start, n - need)) if need <= n else 0
            stop = min(n, start + need)
        slices.append(slice(start, stop))
    return tuple(slices)  # type: ignore[return-value]


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over axis 0."""
    e = np.exp(x - x.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function (no overflow for large negative inputs)."""
    from scipy.special import expit

    return expit(x)


def largest_component(labels: np.ndarray) -> np.ndarray:
    """Keep the largest connected foreground component (6-connectivity) of a mask/labels map."""
    fg = labels > 0
    comp, n = ndimage.label(fg)
    if n <= 1:
        return labels
    sizes = np.bincount(comp.ravel())
    sizes[0] = 0
    return np.where(comp == int(sizes.argmax()), labels, 0).astype(labels.dtype)


def fill_holes(labels: np.ndarray) -> np.ndarray:
    """Fill enclosed holes of a binary mask (labels > 0 -> 1 inside holes)."""
    filled = ndimage.binary_fill_holes(labels > 0)
    out = labels.copy()
    out[filled & (labels == 0)] = 1
    return out


def brats_regions(
    channels: np.ndarray, threshold: float | Mapping[str, float] = 0.5, enhancing: int = 3
) -> np.ndarray:
    """TC / WT / ET probability channels -> labels 1 necrotic core, 2 edema, `enhancing` (3 or 4).

    `threshold` is one number or one per region (``{"TC": .., "WT": .., "ET": ..}``).
    """
    t = region_thresholds(threshold)
    tc, wt, et = (channels[i] > t[k] for i, k in enumerate(("TC", "WT", "ET")))
    return np.where(et, enhancing, np.where(tc, 1, np.where(wt, 2, 0))).astype(np.uint8)


def region_thresholds(threshold: float | Mapping[str, float]) -> dict[str, float]:
    """A card's ``threshold`` (a number or a TC / WT / ET mapping) as a full mapping."""
    if isinstance(threshold, Mapping):
        return {k: float(threshold.get(k, 0.5)) for k in ("TC", "WT", "ET")}
    return dict.fromkeys(("TC", "WT", "ET"), float(threshold))


def tumour_components(labels: np.ndarray, min_fraction: float) -> np.ndarray:
    """Drop tumour components (26-connected, any label) smaller than `min_fraction` of the largest.

    Removes specks of enhancement or edema away from the main tumour; a second lesion
    of comparable size is kept.
    """
    comps, n = ndimage.label(labels > 0, structure=np.ones((3, 3, 3), bool))
    if n <= 1:
        return labels
    sizes = np.bincount(comps.ravel(), minlength=n + 1)[1:]
    keep = np.zeros(n + 1, bool)
    keep[1:] = sizes >= min_fraction * sizes.max()
    return np.where(keep[comps], labels, 0).astype(labels.dtype)


def brats_labels(channels: np.ndarray, step: Mapping[str, Any], t1c: bool = True) -> np.ndarray:
    """Labels from TC / WT / ET probabilities as a card's ``brats_regions`` step says.

    Step keys: ``threshold`` (number or per region), ``enhancing`` (3 or 4),
    ``min_component`` (fraction of the largest tumour component below which components
    are dropped; absent: none), ``wt_threshold_without_t1c`` (whole tumour threshold when
    the exam has no T1c). Without T1c only the whole tumour is given (label 2).
    """
    t = region_thresholds(step.get("threshold", 0.5))
    if t1c:
        labels = brats_regions(channels, t, int(step.get("enhancing", 3)))
    else:
        wt = float(step.get("wt_threshold_without_t1c", t["WT"]))
        labels = np.where(channels[1] > wt, 2, 0).astype(np.uint8)
    if step.get("min_component"):
        labels = tumour_components(labels, float(step["min_component"]))
    return labels


# -- quantile mapping (the synthesis baseline and base images) ---------------------------------------
QUANTILES = np.linspace(0.0, 100.0, 101)


def brain_quantiles(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """101 quantiles (0, 1, ..., 100 %) of `x` inside `mask`, as float64."""
    return np.percentile(np.asarray(x, np.float64)[mask], QUANTILES)


def match_quantiles(x: np.ndarray, mask: np.ndarray, reference: Iterable[float]) -> np.ndarray:
    """Map `x`'s in-mask quantiles onto `reference` (monotone, piecewise linear); 0 outside `mask`.

    Example:
        >>> x = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
        >>> out = match_quantiles(x, x >= 0, np.linspace(-1, 1, 101))
        >>> float(out.min()), float(out.max())
        (-1.0, 1.0)
    """
    ref = np.asarray(list(reference), np.float64)
    src = brain_quantiles(x, mask)
    src = np.maximum.accumulate(src + np.arange(src.size) * 1e-9)  # strictly increasing for interp
    out = np.zeros(np.shape(x), np.float32)
    out[mask] = np.interp(np.asarray(x, np.float64)[mask], src, ref)
    return out
