"""Occlusion sensitivity in 3D: brute force, and a fast coarse-to-fine mode.

Both modes define the same map: cubes of side ``patch`` slide with ``stride`` over the
model input (window starts ``0, stride, ...``, as captum's ``Occlusion``, without the partial
window captum adds at an axis' end when the stride does not divide the room left); a window's value
is ``score(x) - score(x with the cube set to the baseline)``; a voxel's value is the mean
over the windows covering it. Positive = the cube held evidence for the target.

Brute force evaluates every window through captum's ``Occlusion``. Fast mode (ours: captum
evaluates every window or none, this mode chooses which):

1. skips windows holding no brain voxel (occluding background with the background value
   changes nothing, so their value is exactly 0) and, in the coarse-to-fine stages, windows
   with less than ``min_brain`` of their voxels in the brain (interpolated instead);
2. evaluates a coarse sub-grid of windows (every ``coarse``-th start per axis);
3. ranks the other windows by the largest |value| among the coarse windows around them and
   evaluates the most important ones until ``budget`` (a share of the brute-force window
   count, coarse windows included) is spent; the rest are interpolated from the coarse grid
   (multilinear);
4. batches the occluded copies (``batch`` per forward call).

Forward passes are counted per occluded copy, so numbers compare with MONAI and captum.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.interpolate import RegularGridInterpolator

from ..progress import CancelToken, check

Score = Callable[[torch.Tensor], torch.Tensor]  # (B, C, ...) -> (B,)
Report = Callable[[int], None]


@dataclass
class OcclusionMap:
    """Occlusion result on the model grid.

    Attributes:
        map: (d, h, w) float32, mean window value per voxel.
        passes: Occluded copies evaluated (plus 1 for the unoccluded input).
        windows: Windows of the full (brute-force) grid.
        evaluated: Mask over the window grid of windows actually evaluated.
        seconds: Wall time.
        coarse_map: The map from the coarse windows alone (fast / coarse modes), else None.
        values: Window values on the window grid (evaluated or interpolated).
    """

    map: np.ndarray
    passes: int
    windows: int
    evaluated: np.ndarray
    seconds: float
    coarse_map: np.ndarray | None = None
    values: np.ndarray | None = None


def window_starts(n: int, patch: int, stride: int) -> np.ndarray:
    """Window start positions along one axis (captum's convention)."""
    if patch > n:
        return np.array([0])
    return np.arange(0, n - patch + 1, stride)


def count_monai_default_passes(shape: tuple[int, ...], mask_size: int = 16, overlap: float = 0.6) -> int:
    """Windows MONAI's ``OcclusionSensitivity`` evaluates with its defaults (sliding-window grid)."""
    interval = max(1, int(mask_size * (1 - overlap)))
    counts = [1 if s <= mask_size else math.ceil((s - mask_size) / interval) + 1 for s in shape]
    return math.prod(counts)


def occlusion(
    score: Score,
    x: torch.Tensor,
    *,
    patch: int = 16,
    stride: int = 8,
    mode: str = "fast",
    baseline: float = 0.0,
    coarse: int = 2,
    budget: float = 0.125,
    min_brain: float = 0.2,
    batch: int = 8,
    quantum: float = 1e-4,
    report: Report | None = None,
    cancel: CancelToken | None = None,
) -> OcclusionMap:
    """Occlusion map of `score` for x (1, C, d, h, w) in ``fast``, ``coarse`` or ``brute`` mode.

    ``coarse`` stops after step 2 and interpolates (used by the randomisation check). Window values below
    `quantum` x the largest |value| are set to 0 (numerical noise, identical in all modes).

    Example:
        >>> occ = occlusion(lambda b: net(b)[:, 1], x, mode="fast")  # doctest: +SKIP
        >>> occ.map.shape == tuple(x.shape[2:]), occ.passes < occ.windows  # doctest: +SKIP
        (True, True)
    """
    if mode not in ("fast", "coarse", "brute"):
        raise ValueError(f"Unknown occlusion mode {mode!r}; choose fast, coarse or brute.")
    start = time.perf_counter()
    spatial = tuple(int(s) for s in x.shape[2:])
    starts = [window_starts(n, patch, stride) for n in spatial]
    grid_shape = tuple(len(s) for s in starts)
    brain = (x[0] != baseline).any(dim=0).cpu().numpy()
    share = _brain_share(brain, starts, patch)
    has_brain = share > 0
    values = np.zeros(grid_shape, np.float64)
    evaluated = np.zeros(grid_shape, bool)
    passes = [1]
    base = 0.0
    if mode != "brute":  # captum evaluates the unoccluded input itself
        with torch.no_grad():
            base = float(score(x)[0])

    def run(indices: list[tuple[int, ...]]) -> None:
        for i in range(0, len(indices), batch):
            check(cancel)
            chunk = indices[i : i + batch]
            xs = x.repeat(len(chunk), *([1] * (x.ndim - 1)))
            for b, idx in enumerate(chunk):
                sl = tuple(slice(int(s[j]), int(s[j]) + patch) for s, j in zip(starts, idx, strict=True))
                xs[(b, slice(None), *sl)] = baseline
            with torch.no_grad():
                out = score(xs).double().cpu().numpy()
            for b, idx in enumerate(chunk):
                values[idx] = base - out[b]
                evaluated[idx] = True
            passes[0] += len(chunk)
            if report is not None:
                report(passes[0])

    def finish(vals: np.ndarray) -> np.ndarray:
        vals = vals.copy()
        peak = np.abs(vals).max()
        vals[np.abs(vals) < quantum * peak] = 0.0
        return _to_voxels(vals, starts, patch, spatial)

    coarse_map = None
    if mode == "brute":
        values[:] = _captum_windows(score, x, starts, patch, stride, baseline, batch, report, cancel)
        evaluated[:] = True
        passes[0] += values.size
    else:
        sub = [_coarse_indices(n, coarse) for n in grid_shape]
        mostly = share >= min_brain  # fast modes skip windows mostly outside the brain
        coarse_idx = [idx for idx in itertools.product(*sub) if mostly[idx]]
        run(coarse_idx)
        coarse_values = values.copy()
        _interpolate(coarse_values, evaluated.copy(), sub, has_brain)
        coarse_map = finish(coarse_values)
        if mode == "fast":
            spend = int(budget * np.prod(grid_shape)) - len(coarse_idx)
            run(_refinement(values, sub, evaluated, mostly, spend))
            _interpolate(values, evaluated, sub, has_brain)
        else:
            values = coarse_values
    voxel = finish(values)
    seconds = time.perf_counter() - start
    return OcclusionMap(voxel, passes[0], int(np.prod(grid_shape)), evaluated, seconds, coarse_map, values)


def _captum_windows(
    score: Score,
    x: torch.Tensor,
    starts: list[np.ndarray],
    patch: int,
    stride: int,
    baseline: float,
    batch: int,
    report: Report | None,
    cancel: CancelToken | None,
) -> np.ndarray:
    """Every window's value, evaluated by captum's ``Occlusion`` (grid shape, float64).

    captum adds a partial window at an axis' end when the stride does not divide the room left;
    ours does not, so captum sees the input up to the last full window and the forward function
    puts the rest back. Window values are read from the forward calls (captum evaluates windows
    in order, first axis fastest) and checked against captum's own voxel map.
    """
    from captum.attr import Occlusion

    spatial = tuple(int(n) for n in x.shape[2:])
    sides = tuple(min(patch, n) for n in spatial)
    extent = tuple(int(st[-1]) + side for st, side in zip(starts, sides, strict=True))
    if any(stride > side and len(st) > 1 for st, side in zip(starts, sides, strict=True)):
        raise ValueError(f"Brute-force occlusion needs stride ({stride}) <= patch ({patch}).")
    inner = (slice(None), slice(None), *(slice(0, e) for e in extent))
    outs: list[torch.Tensor] = []

    def forward(part: torch.Tensor) -> torch.Tensor:
        check(cancel)
        full = part
        if extent != spatial:
            full = x.expand(len(part), *x.shape[1:]).clone()
            full[inner] = part
        out = score(full)
        outs.append(out.detach().double().cpu())
        if report is not None and len(outs) > 1:
            report(sum(len(o) for o in outs))
        return out

    c = int(x.shape[1])
    with torch.no_grad():
        attr = Occlusion(forward).attribute(
            x[inner],
            sliding_window_shapes=(c, *sides),
            strides=(c, *(min(stride, side) for side in sides)),
            baselines=baseline,
            perturbations_per_eval=batch,
        )
    grid_shape = tuple(len(st) for st in starts)
    values = (outs[0][0] - torch.cat(outs[1:])).numpy().reshape(grid_shape, order="F")
    ours = _to_voxels(values, starts, patch, spatial)[tuple(slice(0, e) for e in extent)]
    theirs = attr[0, 0].double().cpu().numpy()
    if not np.allclose(ours, theirs, rtol=1e-4, atol=1e-6 * (np.abs(theirs).max() + 1e-12)):
        raise RuntimeError("captum's Occlusion evaluated windows in an unexpected order.")
    return values


def estimate_passes(
    shape: tuple[int, ...],
    patch: int = 16,
    stride: int = 8,
    mode: str = "fast",
    coarse: int = 2,
    budget: float = 0.125,
) -> int:
    """Rough forward-pass count for progress bars (brute: exact upper bound)."""
    grid = [len(window_starts(n, patch, stride)) for n in shape]
    if mode == "brute":
        return math.prod(grid) + 1
    n_coarse = math.prod(len(_coarse_indices(n, coarse)) for n in grid)
    if mode == "coarse":
        return n_coarse + 1
    return max(n_coarse, int(budget * math.prod(grid))) + 1


def _coarse_indices(n: int, step: int) -> list[int]:
    idx = list(range(0, n, step))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    return idx


def _brain_share(brain: np.ndarray, starts: list[np.ndarray], patch: int) -> np.ndarray:
    """For each window, the share of its voxels inside the brain (summed-area table)."""
    sat = np.pad(brain.astype(np.int64), ((1, 0), (1, 0), (1, 0))).cumsum(0).cumsum(1).cumsum(2)
    lo = list(starts)
    hi = [np.minimum(s + patch, n) for s, n in zip(starts, brain.shape, strict=True)]
    a0, b0, c0 = np.ix_(lo[0], lo[1], lo[2])
    a1, b1, c1 = np.ix_(hi[0], hi[1], hi[2])
    total = (
        sat[a1, b1, c1]
        - sat[a0, b1, c1]
        - sat[a1, b0, c1]
        - sat[a1, b1, c0]
        + sat[a0, b0, c1]
        + sat[a0, b1, c0]
        + sat[a1, b0, c0]
        - sat[a0, b0, c0]
    )
    size = np.multiply.outer(np.multiply.outer(hi[0] - lo[0], hi[1] - lo[1]), hi[2] - lo[2])
    return total / np.maximum(size, 1)


def _refinement(
    values: np.ndarray, sub: list[list[int]], evaluated: np.ndarray, has_brain: np.ndarray, spend: int
) -> list[tuple[int, ...]]:
    """The `spend` windows not yet evaluated whose coarse corners are the most important."""
    if spend <= 0:
        return []
    coarse_abs = np.abs(values[np.ix_(*sub)])
    todo = np.argwhere(~evaluated & has_brain)
    if not len(todo):
        return []
    brackets = []  # coarse neighbours below / above each window, per axis
    for axis, positions in enumerate(sub):
        pos = np.asarray(positions)
        hi = np.clip(np.searchsorted(pos, todo[:, axis]), 0, len(pos) - 1)
        lo = np.where(pos[hi] > todo[:, axis], hi - 1, hi).clip(0)
        brackets.append((lo, hi))
    corners = [coarse_abs[a, b, c] for a in brackets[0] for b in brackets[1] for c in brackets[2]]
    importance = np.max(corners, axis=0)  # any important corner: interpolation cannot be trusted
    order = np.argsort(-importance, kind="stable")[:spend]
    return [tuple(int(v) for v in todo[i]) for i in order if importance[i] > 0]


def _interpolate(
    values: np.ndarray, evaluated: np.ndarray, sub: list[list[int]], has_brain: np.ndarray
) -> None:
    """Fill windows not evaluated (but holding brain) from the coarse grid, multilinearly."""
    coarse_vals = values[np.ix_(*sub)]
    interp = RegularGridInterpolator([np.asarray(s, float) for s in sub], coarse_vals, method="linear")
    todo = np.argwhere(~evaluated & has_brain)
    if len(todo):
        values[tuple(todo.T)] = interp(todo.astype(float))


def _to_voxels(
    values: np.ndarray, starts: list[np.ndarray], patch: int, shape: tuple[int, ...]
) -> np.ndarray:
    """Mean of covering window values per voxel (separable box spreading along each axis)."""

    def spread(acc: np.ndarray) -> np.ndarray:
        for axis, (st, n) in enumerate(zip(starts, shape, strict=True)):
            box = np.zeros((n, len(st)))
            for j, s in enumerate(st):
                box[s : s + patch, j] = 1.0
            acc = np.moveaxis(np.tensordot(box, acc, axes=([1], [axis])), 0, axis)
        return acc

    total, count = spread(values), spread(np.ones_like(values))
    return (total / np.maximum(count, 1.0)).astype(np.float32)
