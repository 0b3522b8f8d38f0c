"""scripts/train_click_seg.py's cavity augmentation carves a dark cavity inside the tumour only."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import train_click_seg

sys.path.pop(0)


def _tumour(radius: float, shape: tuple[int, int, int] = (40, 40, 40)) -> np.ndarray:
    g = np.ogrid[tuple(slice(0, s) for s in shape)]
    return sum((a - 20.0) ** 2 for a in g) <= radius * radius


def test_a_cavity_is_dark_on_both_contrasts_and_stays_tumour() -> None:
    lab = _tumour(14)
    img = np.full((2, *lab.shape), 2.0, np.float32)  # bright tumour and surroundings
    before = lab.copy()
    centre = train_click_seg.carve_cyst(np.random.default_rng(0), img, lab)
    assert centre is not None and lab[tuple(np.rint(centre).astype(int))]
    assert np.array_equal(lab, before)  # the label is untouched: the cavity is tumour
    darkened = (img < 1.0).all(axis=0)
    assert darkened.sum() > 100 and not (darkened & ~lab).any()  # dark on FLAIR and T1c, inside only
    c = tuple(np.rint(centre).astype(int))
    assert img[0][c] < -0.2 and img[1][c] < -0.5


def test_a_thin_tumour_gets_no_cavity() -> None:
    lab = _tumour(3)
    img = np.zeros((2, *lab.shape), np.float32)
    assert train_click_seg.carve_cyst(np.random.default_rng(0), img, lab) is None
    assert not img.any()
