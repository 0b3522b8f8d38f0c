"""The classical tumour baseline the models must beat (no training, thresholds on z-scores).

WT = largest connected component of z-scored FLAIR > 1.5;
ET = z-scored T1c > 1.5 inside the hole-filled WT;
TC = ET closed and hole-filled.
Z-scores are taken over the head (voxels above the scan's background value), so raw
integer scans and scans already z-scored inside the brain are treated alike.
Returns BraTS 2023 labels (1 core, 2 edema, 3 enhancing).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def zscore_head(x: np.ndarray) -> np.ndarray:
    """Z-score over the voxels above the background (minimum) value; background -> 0."""
    x = np.asarray(x, dtype=np.float32)
    fg = x > x.min()
    out = np.zeros_like(x)
    if fg.any():
        out[fg] = (x[fg] - x[fg].mean()) / (x[fg].std() or 1.0)
    return out


def baseline_labels(flair: np.ndarray, t1c: np.ndarray, threshold: float = 1.5) -> np.ndarray:
    """Classical labels 0-3 from FLAIR and T1c arrays on one grid."""
    bright = zscore_head(flair) > threshold
    comps, n = ndimage.label(bright)
    if n == 0:
        return np.zeros(flair.shape, np.uint8)
    sizes = ndimage.sum_labels(bright, comps, index=np.arange(1, n + 1))
    wt = ndimage.binary_fill_holes(comps == int(np.argmax(sizes)) + 1)
    et = (zscore_head(t1c) > threshold) & wt
    tc = ndimage.binary_fill_holes(ndimage.binary_closing(et, iterations=2)) & wt
    labels = np.where(wt, 2, 0).astype(np.uint8)
    labels[tc] = 1
    labels[et] = 3
    return labels
