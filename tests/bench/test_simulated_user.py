"""bench/bench_interact.py's simulated user picks the interaction its docstring describes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import bench_interact

sys.path.pop(0)

SHAPE = (30, 30, 20)


def _ball(r: float) -> np.ndarray:
    g = np.ogrid[tuple(slice(0, s) for s in SHAPE)]
    return sum((a - 15.0) ** 2 for a in g[:2]) + (g[2] - 10.0) ** 2 <= r * r


def test_from_nothing_the_first_interaction_is_a_click_at_the_centre() -> None:
    act = bench_interact.next_action(np.zeros(SHAPE, bool), _ball(6), (1.0, 1.0, 1.0), "WT")
    assert act == {"kind": "click", "voxel": (15, 15, 10), "positive": True, "region": "WT"}


def test_a_shell_of_extra_voxels_gets_a_negative_scribble_across_it() -> None:
    ref = _ball(6)
    act = bench_interact.next_action(_ball(7.5), ref, (1.0, 1.0, 1.0), "WT")
    assert act is not None and act["kind"] == "scribble" and not act["positive"]
    start, end = (np.array(p) for p in act["points"])
    assert not _ball(7.5)[tuple(start)] and _ball(7.5)[tuple(end)]  # from outside the outline, into it
    assert start[2] == end[2]  # on one axial slice


def test_core_and_enhancing_errors_get_a_lasso_along_the_reference() -> None:
    act = bench_interact.next_action(_ball(4), _ball(6), (1.0, 1.0, 1.0), "TC")
    assert act is not None and act["kind"] == "lasso" and len(act["points"]) >= 3
    k = act["points"][0][2]
    assert all(p[2] == k for p in act["points"])
