"""Tumour pre/postprocessing: background of ringing scans, per-region thresholds, speck removal."""

from __future__ import annotations

import numpy as np

from napari_brain_dl.core.models.prepost import (
    brats_labels,
    brats_regions,
    tumour_components,
    zscore_foreground,
)


def _brain(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = np.zeros((40, 40, 40), np.float32)
    brain = np.zeros(x.shape, bool)
    brain[8:32, 8:32, 8:32] = True
    x[brain] = rng.normal(300, 40, int(brain.sum()))
    return x, brain


def test_zscore_background_is_zero_when_ringing_leaves_negative_values_in_the_brain() -> None:
    """TCGA-style scans: background 0, a few negative voxels inside the brain (resampling ringing)."""
    x, brain = _brain(np.random.default_rng(0))
    x[10, 10, 10:20] = -50  # the minimum is now rare and inside the brain
    z = zscore_foreground(x)
    assert (z[~brain] == 0).all()
    assert abs(float(z[brain].mean())) < 0.1 and 0.8 < float(z[brain].std()) < 1.3
    clean, _ = _brain(np.random.default_rng(0))  # a background at the minimum behaves as before
    assert (zscore_foreground(clean)[~brain] == 0).all()


def test_region_thresholds_and_whole_tumour_without_t1c() -> None:
    p = np.zeros((3, 4, 4, 4), np.float32)
    p[1, :2] = 0.45  # WT probability between the two thresholds
    p[0, 0, 0] = 0.6  # TC
    p[2, 0, 0, 0] = 0.55  # ET
    lab = brats_regions(p, {"TC": 0.5, "WT": 0.4, "ET": 0.5})
    assert lab[0, 0, 0] == 3 and lab[0, 0, 1] == 1 and lab[1, 0, 0] == 2 and lab[2, 0, 0] == 0
    assert (brats_regions(p, 0.5)[1] == 0).all()  # one number: same threshold for every region
    step = {"threshold": {"TC": 0.5, "WT": 0.4, "ET": 0.5}, "wt_threshold_without_t1c": 0.5}
    assert (brats_labels(p, step, t1c=False) == 0).all()  # 0.45 < 0.5: none without T1c
    step["wt_threshold_without_t1c"] = 0.3
    assert set(np.unique(brats_labels(p, step, t1c=False))) == {0, 2}  # whole tumour only


def test_specks_away_from_the_tumour_are_dropped() -> None:
    lab = np.zeros((30, 30, 30), np.uint8)
    lab[5:15, 5:15, 5:15] = 2
    lab[8:12, 8:12, 8:12] = 3
    lab[25, 25, 25] = 3  # an enhancing speck far away
    lab[20:27, 2:9, 2:9] = 2  # a second lesion, a third the size of the first
    out = tumour_components(lab, 0.1)
    assert out[25, 25, 25] == 0 and (out[8:12, 8:12, 8:12] == 3).all() and (out[20:27, 2:9, 2:9] == 2).all()
    step = {"threshold": 0.5, "min_component": 0.1}
    probs = np.stack([lab == 3, lab > 0, lab == 3]).astype(np.float32)
    assert brats_labels(probs, step)[25, 25, 25] == 0
    assert brats_labels(probs, {"threshold": 0.5})[25, 25, 25] == 3
