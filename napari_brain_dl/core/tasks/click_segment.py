"""Click-guided whole-tumour segmentation (DeepGrow / DeepEdit style).

The user clicks inside the tumour (positive clicks) and, where the mask spills over,
outside it (negative clicks); every click returns an updated whole-tumour mask
(BraTS labels 1+2+3: necrotic core, edema, enhancing tumour) in well under a second
on a laptop CPU.

Model: the project's `UNet3D` with four input channels -- FLAIR, T1c (each normalised
with ``zscore_foreground`` over the whole exam, once per exam) and two click maps
(Gaussian balls, sigma 2.5 window voxels, peak 1: positive clicks, negative clicks) --
and one output channel (tumour logit). It is trained by ``scripts/train_click_seg.py``.

Region strategy (why a click answers fast): the network never sees the whole exam,
only a window of at most ``window`` (80) voxels per side, in the card's orientation
(LPS, an exact axis permutation of the input):

1. First click: a cube of ``first_side_mm`` (128 mm) centred on it.
2. Later clicks need the bounding box of the current mask and of every click, plus
   ``margin_mm`` (12 mm) on each side, at least ``min_side_mm`` (80 mm) per side. The
   previous region is kept while it covers that box (so only the new click changes the
   network's answer), grown to cover it when the mask or a click leaves it, and
   replaced by the tighter box when the box is under ``shrink`` (0.6) of its size (a
   small tumour then gets finer voxels).
3. The region is sampled onto the window with isotropic voxels of
   ``max(1 mm, longest side / (window - 1))`` (trilinear), so a tumour larger than 80 mm is
   seen downsampled, as in training; each window side is a multiple of 16 (the U-Net's
   divisor), shorter when the region is elongated. Outside the exam the window is 0,
   the normalised background value.
4. On the window, only the connected parts (26-connectivity) of ``logit > 0`` that hold
   a positive click are kept; the logit is then mapped back (trilinear) onto the exam's
   voxels inside the region and thresholded at 0. Both resamplings are axis-aligned,
   done as three 1-D interpolations.
5. Local edits: a new positive click only adds the connected parts of the change that
   touch it, a new negative click only removes the connected parts it touches; the
   rest of the mask, and everything outside the region, keeps its previous value. A
   click therefore never undoes the result of earlier clicks far from it. A click also
   always wins where it is: voxels within ``click_radius_mm`` (2 mm) of a positive click
   are tumour, of a negative click background, whatever the network says.

Latency: the exam is normalised once (constructor); an update costs one network pass on
at most 80^3 voxels plus a few tens of milliseconds of resampling.

Clicks that only extend the previous list (the usual case) refine the previous mask;
any other list (an undo) starts again from an empty mask with all clicks at once.

Example:
    >>> flair, t1c = io.load("Flair.nii.gz"), io.load("T1c.nii.gz")  # doctest: +SKIP
    >>> seg = ClickSegmenter(flair, t1c)  # doctest: +SKIP
    >>> mask = seg.update(fg=[(100, 80, 70)])  # doctest: +SKIP
    >>> mask = seg.update(fg=[(100, 80, 70)], bg=[(120, 60, 75)])  # doctest: +SKIP
    >>> mask.meta["provenance"]["model_id"]  # doctest: +SKIP
    'brats-tumor-click'
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from ... import __version__
from ..image_metrics import dice
from ..progress import CancelToken, check
from ..volume import Volume, reorient, restore_orientation
from .tumor_prompts import innermost_voxel

#: What the click model gets as its T1c, in order of preference: T1 stands in on exams without T1c
#: (no contrast agent), measured in the card of brats-tumor-click.
T1C_INPUTS = ("T1c", "T1")
T1_FOR_T1C = ("No T1c: T1 stands in for the click model's T1c, so clicks outline the whole tumour only and "
              "less reliably than with T1c (model card).")


def click_t1c_input(present: Sequence[str]) -> str | None:
    """The contrast the click model gets as its T1c: T1c, else T1 standing in; None without either."""
    return next((name for name in T1C_INPUTS if name in present), None)


#: The logit where the click model has no answer of its own: beyond the clicked tumour's box,
#: and on tumour parts that no positive click touches.
NO_ANSWER = np.float32(-1e-3)

#: Region settings; a card's ``inference`` section overrides them.
DEFAULTS: dict[str, float] = {
    "window": 80,
    "first_side_mm": 128.0,
    "min_side_mm": 80.0,
    "margin_mm": 12.0,
    "min_voxel_mm": 1.0,
    "sigma": 2.5,
    "divisor": 16,
    "shrink": 0.6,
    "click_radius_mm": 2.0,
}
_FULL = np.ones((3, 3, 3), bool)

__all__ = [
    "DEFAULTS",
    "ClickSegmenter",
    "Region",
    "click_maps",
    "click_segment",
    "keep_clicked",
    "next_click",
    "plan_region",
    "simulate_clicks",
]


# ----------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class Region:
    """A network window placed on a grid (axis-aligned, isotropic in mm).

    Attributes:
        origin: Grid voxel coordinates (float) of window voxel (0, 0, 0).
        step: Grid voxels per window voxel along each axis.
        shape: Window shape (each side a multiple of the U-Net's divisor).
        voxel_mm: Window voxel size in mm.
    """

    origin: np.ndarray
    step: np.ndarray
    shape: tuple[int, int, int]
    voxel_mm: float

    def to_window(self, points: np.ndarray) -> np.ndarray:
        """Grid voxel coordinates (N, 3) -> window coordinates (N, 3)."""
        return (np.asarray(points, float).reshape(-1, 3) - self.origin) / self.step

    def grid_box(
        self, grid_shape: Sequence[int], lo: Sequence[float] | None = None, hi: Sequence[float] | None = None
    ) -> tuple[slice, slice, slice]:
        """Grid voxels whose centres lie inside the window (or its part from `lo` to `hi`), clipped."""
        lo = np.zeros(3) if lo is None else np.asarray(lo, float)
        hi = np.asarray(self.shape, float) - 1 if hi is None else np.asarray(hi, float)
        out = []
        for o, s, a, b, size in zip(self.origin, self.step, lo, hi, grid_shape, strict=True):
            start = max(0, math.ceil(o + a * s - 1e-6))
            stop = min(int(size), math.floor(o + b * s + 1e-6) + 1)
            out.append(slice(start, max(start, stop)))
        return tuple(out)  # type: ignore[return-value]

    def sample(self, data: np.ndarray) -> np.ndarray:
        """Pull (C, X, Y, Z) grid data onto the window (trilinear, zero outside the grid)."""
        coords = [o + np.arange(n) * s for o, s, n in zip(self.origin, self.step, self.shape, strict=True)]
        return _separable_linear(data, coords, outside="zero")

    def back(self, window: np.ndarray, box: tuple[slice, ...]) -> np.ndarray:
        """Window data (X', Y', Z') -> the grid voxels of `box` (trilinear, edge values beyond)."""
        coords = [
            (np.arange(b.start, b.stop) - o) / s for b, o, s in zip(box, self.origin, self.step, strict=True)
        ]
        return _separable_linear(np.asarray(window, np.float32)[None], coords, outside="nearest")[0]

    def info(self) -> dict[str, Any]:
        """JSON-ready description (provenance)."""
        return {
            "origin_voxel": [round(float(v), 3) for v in self.origin],
            "step_voxels": [round(float(v), 4) for v in self.step],
            "window": list(self.shape),
            "voxel_mm": round(self.voxel_mm, 4),
        }


def _separable_linear(data: np.ndarray, coords: Sequence[np.ndarray], outside: str) -> np.ndarray:
    """Trilinear interpolation of (C, X, Y, Z) `data` at the grid of per-axis coordinates `coords`.

    An axis-aligned resampling is three 1-D interpolations: much faster than a general
    affine resampling. ``outside``: "zero" (values beyond the grid are 0) or "nearest".
    """
    out = np.asarray(data, np.float32)
    sizes = out.shape[1:]
    lows = [max(0, int(np.floor(c.min()))) if len(c) else 0 for c in coords]
    highs = [min(n, int(np.floor(c.max())) + 2) if len(c) else 0 for c, n in zip(coords, sizes, strict=True)]
    if any(h <= lo for lo, h in zip(lows, highs, strict=True)):  # entirely outside the grid
        return np.zeros((out.shape[0], *(len(c) for c in coords)), np.float32)
    out = out[(slice(None), *(slice(lo, h) for lo, h in zip(lows, highs, strict=True)))]
    for ax, (pos, lo) in enumerate(zip(coords, lows, strict=True)):
        size = out.shape[ax + 1]
        pos = np.asarray(pos, float) - lo
        if outside == "nearest":
            pos = np.clip(pos, 0, size - 1)
        i0 = np.floor(pos).astype(np.intp)
        frac = (pos - i0).astype(np.float32)
        w0, w1 = 1 - frac, frac
        if outside == "zero":
            w0 = w0 * ((i0 >= 0) & (i0 < size))
            w1 = w1 * ((i0 + 1 >= 0) & (i0 + 1 < size))
        shape = [1, 1, 1, 1]
        shape[ax + 1] = -1
        a = np.take(out, np.clip(i0, 0, size - 1), axis=ax + 1)
        b = np.take(out, np.clip(i0 + 1, 0, size - 1), axis=ax + 1)
        out = a * w0.reshape(shape) + b * w1.reshape(shape)
    return np.ascontiguousarray(out, dtype=np.float32)


def plan_region(
    spacing: Sequence[float],
    points: np.ndarray,
    mask_box: tuple[np.ndarray, np.ndarray] | None = None,
    settings: dict[str, Any] | None = None,
    previous: Region | None = None,
) -> Region:
    """Window for the clicks so far (see the module docstring).

    Args:
        spacing: Grid voxel size (mm) along each axis.
        points: Click voxel coordinates (N, 3); the first is the first click.
        mask_box: (low, high) inclusive voxel corners of the current mask, or None (no mask yet).
        settings: Overrides of `DEFAULTS`.
        previous: The region of the previous click: kept while it still covers the mask and
            the clicks (and is not ``shrink`` times too large), grown to cover them otherwise.

    Example:
        >>> r = plan_region((1.0, 1.0, 1.0), np.array([[50, 50, 50]]))
        >>> r.shape, round(r.voxel_mm, 3)
        ((80, 80, 80), 1.62)
    """
    cfg = {**DEFAULTS, **(settings or {})}
    sp = np.asarray(spacing, float)
    pts = np.asarray(points, float).reshape(-1, 3) * sp
    margin, min_side = float(cfg["margin_mm"]), float(cfg["min_side_mm"])
    if mask_box is None:
        half = float(cfg["first_side_mm"]) / 2
        lo = np.minimum(pts[0] - half, pts.min(0) - margin)
        hi = np.maximum(pts[0] + half, pts.max(0) + margin)
    else:
        lo = np.minimum(np.asarray(mask_box[0], float) * sp, pts.min(0)) - margin
        hi = np.maximum(np.asarray(mask_box[1], float) * sp, pts.max(0)) + margin
    if previous is not None:
        p_lo = previous.origin * sp
        p_hi = (previous.origin + (np.asarray(previous.shape) - 1) * previous.step) * sp
        if max(float((hi - lo).max()), min_side) >= float(cfg["shrink"]) * float((p_hi - p_lo).max()):
            if np.all(lo >= p_lo - 1e-6) and np.all(hi <= p_hi + 1e-6):
                return previous  # same window: the new click alone changes the answer
            lo, hi = np.minimum(lo, p_lo), np.maximum(hi, p_hi)  # grow, keeping what was seen
    centre = (lo + hi) / 2
    side = np.maximum(hi - lo, min_side)
    window, div = int(cfg["window"]), int(cfg["divisor"])
    voxel = max(float(cfg["min_voxel_mm"]), float(side.max()) / (window - 1))
    n = np.clip(np.ceil((side / voxel + 1) / div) * div, div, window).astype(int)  # (n - 1) voxels >= side
    origin_mm = centre - (n - 1) * voxel / 2
    return Region(origin_mm / sp, voxel / sp, tuple(int(v) for v in n), voxel)  # type: ignore[arg-type]


def click_maps(shape: Sequence[int], fg: np.ndarray, bg: np.ndarray, sigma: float = 2.5) -> np.ndarray:
    """Two channels (positive, negative) of Gaussian balls at window coordinates, peak 1.

    Example:
        >>> m = click_maps((16, 16, 16), np.array([[8, 8, 8]]), np.zeros((0, 3)))
        >>> float(m[0, 8, 8, 8]), float(m[1].max())
        (1.0, 0.0)
    """
    out = np.zeros((2, *shape), np.float32)
    reach = math.ceil(3 * sigma)
    for ch, pts in enumerate((fg, bg)):
        for p in np.asarray(pts, float).reshape(-1, 3):
            c = np.rint(p).astype(int)
            lo = np.maximum(c - reach, 0)
            hi = np.minimum(c + reach + 1, shape)
            if np.any(hi <= lo):
                continue
            axes = [np.arange(a, b) - q for a, b, q in zip(lo, hi, p, strict=True)]
            d2 = axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2
            sub = out[ch, lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
            np.maximum(sub, np.exp(-d2 / (2 * sigma**2)).astype(np.float32), out=sub)
    return out


def keep_clicked(mask: np.ndarray, fg: np.ndarray, radius: int = 2) -> np.ndarray:
    """Keep the connected parts (26-connectivity) of `mask` within `radius` voxels of a positive click."""
    labels, n = ndimage.label(mask, structure=_FULL)
    if n == 0:
        return mask.astype(bool)
    keep = np.zeros(n + 1, bool)
    for p in np.asarray(fg, int).reshape(-1, 3):
        if np.any(p < 0) or np.any(p >= mask.shape):
            continue
        sl = tuple(slice(max(0, int(c) - radius), int(c) + radius + 1) for c in p)
        keep[np.unique(labels[sl])] = True
    keep[0] = False
    return keep[labels]


# ----------------------------------------------------------------------------- clicks
def next_click(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | None = None
) -> tuple[tuple[int, int, int], bool] | None:
    """Where a careful user clicks next: the innermost voxel of the largest error region.

    Errors are split into misses (in `ref`, not in `pred`: a positive click) and extras
    (in `pred`, not in `ref`: a negative click); components are face-connected; the
    innermost voxel is the maximum of the Euclidean distance transform (mm when
    `spacing` is given). With an empty `pred` this is the innermost voxel of the whole
    `ref` (the protocol's first click).

    Returns:
        ((i, j, k), positive), or None when `pred` equals `ref`.

    Example:
        >>> ref = np.zeros((9, 9, 9), bool); ref[2:7, 2:7, 2:7] = True
        >>> next_click(np.zeros_like(ref), ref)
        ((4, 4, 4), True)
    """
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    if not pred.any():
        if not ref.any():
            return None
        return innermost_voxel(ref, spacing), True
    best: tuple[int, np.ndarray, bool] | None = None
    for err, positive in ((ref & ~pred, True), (pred & ~ref, False)):
        if not err.any():
            continue
        labels, _ = ndimage.label(err)
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        k = int(sizes.argmax())
        if best is None or sizes[k] > best[0]:
            best = (int(sizes[k]), labels == k, positive)
    if best is None:
        return None
    return innermost_voxel(best[1], spacing), best[2]


def simulate_clicks(segmenter: ClickSegmenter, ref: np.ndarray, clicks: int = 5) -> list[dict[str, Any]]:
    """Run the click protocol against a reference mask on the segmenter's input grid.

    First click at the innermost voxel of `ref`, each next one at the innermost voxel of
    the largest error region (`next_click`), positive for a miss, negative for an extra.

    Returns:
        One entry per click: index, positive, Dice after it, seconds of `update`.

    Example:
        >>> steps = simulate_clicks(ClickSegmenter(flair, t1c), truth > 0, clicks=3)  # doctest: +SKIP
        >>> [round(s["dice"], 3) for s in steps]  # doctest: +SKIP
        [0.87, 0.91, 0.93]
    """
    ref = np.asarray(ref, bool)
    segmenter.reset()
    fg: list[tuple[int, int, int]] = []
    bg: list[tuple[int, int, int]] = []
    pred = np.zeros(ref.shape, bool)
    out: list[dict[str, Any]] = []
    for _ in range(clicks):
        nxt = next_click(pred, ref, segmenter.flair.spacing)
        if nxt is None:
            break
        (fg if nxt[1] else bg).append(nxt[0])
        start = time.perf_counter()
        pred = segmenter.update(fg, bg).data > 0
        seconds = time.perf_counter() - start
        out.append({"click": list(nxt[0]), "positive": nxt[1], "dice": dice(pred, ref), "seconds": seconds})
    return out


# ----------------------------------------------------------------------------- segmenter
def _check_exam(flair: Volume, t1c: Volume, t1c_input: str = "T1c") -> None:
    if not isinstance(flair, Volume) or not isinstance(t1c, Volume):
        raise ValueError(
            f"FLAIR and {t1c_input} must both be Volumes (load them with napari_brain_dl.core.io.load)."
        )
    if not flair.same_grid(t1c, atol=1e-3):
        raise ValueError(
            f"FLAIR {flair.shape} and {t1c_input} {t1c.shape} are not on the same grid (shape and affine); "
            f"co-register or resample {t1c_input} onto FLAIR first."
        )
    for name, vol in (("FLAIR", flair), (t1c_input, t1c)):
        data = np.asarray(vol.data)
        finite = data[np.isfinite(data)] if np.issubdtype(data.dtype, np.floating) else data
        if finite.size == 0 or finite.min() == finite.max():
            raise ValueError(f"The {name} volume is empty (all voxels zero or one constant value).")


def _as_points(clicks: Sequence[Sequence[float]], shape: tuple[int, ...], kind: str) -> np.ndarray:
    try:
        rows = [[float(v) for v in c] for c in clicks]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Each {kind} click must be three voxel indices (i, j, k).") from exc
    if any(len(r) != 3 or not all(math.isfinite(v) for v in r) for r in rows):
        raise ValueError(f"Each {kind} click must be three voxel indices (i, j, k).")
    pts = np.asarray(rows, float).reshape(-1, 3)
    pts = np.rint(pts).astype(int)
    bad = [tuple(int(v) for v in p) for p in pts if np.any(p < 0) or np.any(p >= np.asarray(shape))]
    if bad:
        raise ValueError(f"The {kind} click {bad[0]} lies outside the volume of shape {tuple(shape)}.")
    return pts


class ClickSegmenter:
    """Caches the normalised exam; each update answers in well under a second.

    Args:
        flair: FLAIR Volume (raw integers or already z-scored; skull-stripped); defines the grid.
        t1c: Contrast-enhanced T1 on the same grid (or T1 standing in: `t1c_input`).
        model: Model id, card path or loaded model (default: the shipped ``brats-tumor-click``).
        device: auto | cpu | cuda | mps.
        threads: CPU threads for the network pass; None leaves one core to the viewer
            (all cores but one, at most torch's setting, at least one). On a busy 2-core
            machine one thread answers faster than two that wait for each other.
        t1c_input: The contrast given as `t1c`, named in the error sentences ("T1" without T1c).

    Raises:
        ValueError: Grids that disagree, or an empty volume.
    """

    def __init__(
        self,
        flair: Volume,
        t1c: Volume,
        model: Any = "brats-tumor-click",
        device: str = "auto",
        threads: int | None = None,
        t1c_input: str = "T1c",
    ):
        from ..inference import get_model
        from ..models.prepost import zscore_foreground

        _check_exam(flair, t1c, t1c_input)
        self.flair, self.t1c = flair, t1c
        self.threads = threads
        self.loaded = get_model(model, device)
        card = self.loaded.card
        self.settings = {**DEFAULTS, **{k: v for k, v in card.inference.items() if k in DEFAULTS}}
        axcodes = tuple(card.orientation.upper()) if card.orientation else tuple(flair.axcodes)
        oriented, self._transform = reorient(flair, axcodes)  # type: ignore[arg-type]
        oriented_t1c, _ = reorient(t1c, axcodes)  # type: ignore[arg-type]
        self.shape = oriented.shape
        self.spacing = tuple(float(s) for s in oriented.spacing)
        self.exam = np.stack(
            [
                zscore_foreground(np.nan_to_num(np.asarray(v.data, np.float32)))
                for v in (oriented, oriented_t1c)
            ]
        )  # computed once per exam (2, X, Y, Z), card orientation
        self.reset()
        if not self.loaded.extras.get("click_warm"):  # the first pass sets up the kernels: not on a click
            window = int(self.settings["window"])
            self._forward(np.zeros((4, window, window, window), np.float32))
            self.loaded.extras["click_warm"] = True

    def reset(self) -> None:
        """Forget the clicks and the mask."""
        self._fg = np.zeros((0, 3), int)
        self._bg = np.zeros((0, 3), int)
        self._mask = np.zeros(self.shape, bool)
        self.region: Region | None = None
        self.last_region: Region | None = None  # the window of the last `logits` call

    # -- index mapping between the input grid and the card's orientation
    def _to_model(self, pts: np.ndarray) -> np.ndarray:
        out = np.empty_like(pts)
        for axis, (new_axis, flip) in enumerate(self._transform):
            col = pts[:, axis]
            out[:, int(new_axis)] = col if flip > 0 else self.flair.shape[axis] - 1 - col
        return out

    def update(
        self,
        fg: Sequence[Sequence[int]],
        bg: Sequence[Sequence[int]] = (),
        cancel: CancelToken | None = None,
    ) -> Volume:
        """Whole-tumour mask (uint8 0/1) on FLAIR's grid for all clicks so far.

        Args:
            fg: Positive clicks, voxel indices (i, j, k) of FLAIR's array as loaded.
            bg: Negative clicks, same convention.
            cancel: Token polled between steps.

        Raises:
            ValueError: No positive click, or a click outside the volume.
            Cancelled: `cancel` was set.
        """

        start = time.perf_counter()
        fg_in = _as_points(fg, self.flair.shape, "positive")
        bg_in = _as_points(bg, self.flair.shape, "negative")
        if len(fg_in) == 0:
            raise ValueError("At least one positive click inside the tumour is needed.")
        fg_m, bg_m = self._to_model(fg_in), self._to_model(bg_in)
        extends = (
            len(self._fg) > 0
            and len(fg_m) >= len(self._fg)
            and len(bg_m) >= len(self._bg)
            and np.array_equal(fg_m[: len(self._fg)], self._fg)
            and np.array_equal(bg_m[: len(self._bg)], self._bg)
        )
        prev = self._mask if extends else np.zeros(self.shape, bool)
        check(cancel)
        previous = self.region if extends else None
        region, box, logit_box = self._predict(fg_m, bg_m, _bounds(prev), previous, cancel)
        new = logit_box > 0
        added = (len(fg_m) - len(self._fg), len(bg_m) - len(self._bg)) if extends else None
        mask = prev.copy()
        mask[box] = _local_edit(prev[box], new, added, fg_m, bg_m, np.array([b.start for b in box]))
        radius = float(self.settings["click_radius_mm"])
        _paint_balls(mask, fg_m, radius, self.spacing, True)  # a click always wins where it is
        _paint_balls(mask, bg_m, radius, self.spacing, False)
        self._fg, self._bg, self._mask, self.region = fg_m, bg_m, mask, region
        out = np.ascontiguousarray(restore_orientation(mask.astype(np.uint8), self._transform))
        seconds = time.perf_counter() - start
        prov = self._provenance(fg_in, bg_in, region, box, seconds, extends)
        return self.flair.with_data(
            out, name=f"{self.flair.name}_tumour", provenance=prov, model_id=prov["model_id"]
        )

    def _predict(
        self,
        fg_m: np.ndarray,
        bg_m: np.ndarray,
        mask_box: tuple[np.ndarray, np.ndarray] | None,
        previous: Region | None,
        cancel: CancelToken | None,
    ) -> tuple[Region, tuple[slice, slice, slice], np.ndarray]:
        """One network pass (card orientation): the region, its grid box and the logit on that box.

        Only the connected parts of ``logit > 0`` holding a positive click stay positive;
        elsewhere the logit is at most `NO_ANSWER` (and `NO_ANSWER` beyond the tumour's window box).
        """
        region = plan_region(self.spacing, np.concatenate([fg_m, bg_m]), mask_box, self.settings, previous)
        window = np.concatenate(
            [
                region.sample(self.exam),
                click_maps(
                    region.shape,
                    region.to_window(fg_m),
                    region.to_window(bg_m),
                    float(self.settings["sigma"]),
                ),
            ]
        )
        check(cancel)
        logit = self._forward(window)
        check(cancel)
        # connected parts holding a positive click, found on the window (fewer voxels)
        keep = keep_clicked(logit > 0, np.rint(region.to_window(fg_m)).astype(int))
        box = region.grid_box(self.shape)
        out = np.full(tuple(b.stop - b.start for b in box), NO_ANSWER, np.float32)
        if keep.any():
            idx = np.argwhere(keep)
            logit = np.where(keep, logit, np.minimum(logit, NO_ANSWER))
            lo = np.maximum(idx.min(0) - 1, 0)  # one window voxel of margin, never beyond the window
            hi = np.minimum(idx.max(0) + 1, np.asarray(region.shape) - 1)
            sub = _within(region.grid_box(self.shape, lo, hi), box)  # only where the tumour is
            if all(s.stop > s.start for s in sub):
                at = tuple(slice(a.start - b.start, a.stop - b.start) for a, b in zip(sub, box, strict=True))
                out[at] = region.back(logit, sub)
        return region, box, out  # type: ignore[return-value]

    def logits(
        self,
        fg: Sequence[Sequence[int]],
        bg: Sequence[Sequence[int]] = (),
        mask: np.ndarray | None = None,
        cancel: CancelToken | None = None,
    ) -> tuple[tuple[slice, slice, slice], np.ndarray]:
        """Tumour logit (float32) for these clicks on a box of FLAIR's grid; the session's mask is untouched.

        Used by `tumor_edit.TumourEditor`, which keeps its own label map: the window covers
        the clicks and the bounding box of `mask` (FLAIR's array, bool), and the answer is
        the box of FLAIR voxels inside the window with the logit there (> 0: tumour).

        Raises:
            ValueError: No positive click, or a click outside the volume.
        """
        fg_in = _as_points(fg, self.flair.shape, "positive")
        bg_in = _as_points(bg, self.flair.shape, "negative")
        if len(fg_in) == 0:
            raise ValueError("At least one positive click inside the tumour is needed.")
        fg_m, bg_m = self._to_model(fg_in), self._to_model(bg_in)
        mask_m = None
        if mask is not None and np.any(mask):
            from nibabel.orientations import apply_orientation

            mask_m = _bounds(apply_orientation(np.asarray(mask, bool), self._transform))
        start = time.perf_counter()
        self.last_region, box_m, logit_m = self._predict(fg_m, bg_m, mask_m, None, cancel)
        box, data = self._box_to_input(box_m, logit_m)
        self.last_seconds = time.perf_counter() - start
        return box, data

    def _box_to_input(
        self, box_m: tuple[slice, ...], data_m: np.ndarray
    ) -> tuple[tuple[slice, slice, slice], np.ndarray]:
        """A box and its data in the card's orientation -> the same box on FLAIR's array (exact)."""
        axes, box = [], []
        for axis, (new_axis, flip) in enumerate(self._transform):
            s = box_m[int(new_axis)]
            size = self.flair.shape[axis]
            axes.append(int(new_axis))
            box.append(s if flip > 0 else slice(size - s.stop, size - s.start))
        data = np.transpose(data_m, axes)
        flips = tuple(a for a, (_, f) in enumerate(self._transform) if f < 0)
        data = np.flip(data, flips) if flips else data
        return tuple(box), np.ascontiguousarray(data)  # type: ignore[return-value]

    def _threads(self) -> int:
        if self.threads:
            return int(self.threads)
        from ..models.loaders import threads_hint

        return max(1, min(_torch_threads(), threads_hint() - 1))

    def _forward(self, window: np.ndarray) -> np.ndarray:
        import torch

        module, device = self.loaded.module, self.loaded.device
        x = torch.from_numpy(window)[None].to(device)
        if device.type == "cpu" and not isinstance(module, torch.jit.ScriptModule):
            module.to(memory_format=torch.channels_last_3d)  # about 10 % faster on CPUs
            x = x.contiguous(memory_format=torch.channels_last_3d)
        saved = torch.get_num_threads()
        torch.set_num_threads(self._threads())
        try:
            with torch.inference_mode():
                return module(x)[0, 0].float().cpu().contiguous().numpy()
        finally:
            torch.set_num_threads(saved)

    def _provenance(
        self,
        fg: np.ndarray,
        bg: np.ndarray,
        region: Region,
        box: tuple[slice, ...],
        seconds: float,
        extends: bool,
    ) -> dict[str, Any]:
        import torch


        card = self.loaded.card
        return {
            "model_id": card.id,
            "model_name": card.name,
            "task": "click segmentation (whole tumour)",
            "weights_sha256": self.loaded.sha256,
            "card_path": str(card.card_path) if card.card_path else None,
            "inputs": {
                name: str(v.meta.get("path", v.name))
                for name, v in (("FLAIR", self.flair), ("T1c", self.t1c))
            },
            "clicks": {"positive": fg.tolist(), "negative": bg.tolist()},
            "refined_previous_mask": bool(extends),
            "region": {
                **region.info(),
                "orientation": card.orientation,
                "box_voxels": [[b.start, b.stop] for b in box],
            },
            "package_version": __version__,
            "torch_version": torch.__version__,
            "device": str(self.loaded.device),
            "threads": self._threads(),
            "seconds": round(seconds, 3),
            "intended_use": card.intended_use,
            "license": card.license,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }


def _bounds(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(low, high) inclusive voxel corners of a mask's bounding box, None when empty."""
    if not mask.any():
        return None
    nz = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
    return np.array([v[0] for v in nz]), np.array([v[-1] for v in nz])


def _within(sub: tuple[slice, ...], box: tuple[slice, ...]) -> tuple[slice, ...]:
    """`sub` clipped to `box` (both grid slices), so that it indexes inside `box`'s array."""
    out = []
    for a, b in zip(sub, box, strict=True):
        start = min(max(a.start, b.start), b.stop)
        out.append(slice(start, max(start, min(a.stop, b.stop))))
    return tuple(out)


def _local_edit(
    prev: np.ndarray,
    new: np.ndarray,
    added: tuple[int, int] | None,
    fg: np.ndarray,
    bg: np.ndarray,
    start: np.ndarray,
    radius: int = 2,
) -> np.ndarray:
    """One new click edits only the part of the mask it touches.

    A new positive click adds the connected parts of (new - previous) within `radius`
    voxels of it, and removes nothing; a new negative click removes the connected parts
    of (previous - new) near it, and adds nothing. Anything else (first click, several
    new clicks at once) takes the new prediction as it is.
    """
    if added == (0, 0):
        return prev  # the same clicks again: the same mask
    if added not in ((1, 0), (0, 1)):
        return new
    positive = added == (1, 0)
    click = (fg[-1] if positive else bg[-1]) - start
    change = (new & ~prev) if positive else (prev & ~new)
    touched = keep_clicked(change, click[None], radius)
    return (prev | touched) if positive else (prev & ~touched)


def _paint_balls(
    mask: np.ndarray, points: np.ndarray, radius_mm: float, spacing: Sequence[float], value: bool
) -> None:
    """Set the voxels within `radius_mm` of each point to `value` (in place)."""
    sp = np.asarray(spacing, float)
    reach = np.floor(radius_mm / sp).astype(int)
    for p in np.asarray(points, int).reshape(-1, 3):
        lo = np.maximum(p - reach, 0)
        hi = np.minimum(p + reach + 1, mask.shape)
        axes = [(np.arange(a, b) - c) * s for a, b, c, s in zip(lo, hi, p, sp, strict=True)]
        d2 = axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2
        view = mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        view[d2 <= radius_mm**2] = value


def _torch_threads() -> int:
    """torch's current number of CPU threads."""
    import torch

    return int(torch.get_num_threads())


def click_segment(
    flair: Volume,
    t1c: Volume,
    fg: Sequence[Sequence[int]],
    bg: Sequence[Sequence[int]] = (),
    *,
    model: Any = "brats-tumor-click",
    device: str = "auto",
) -> Volume:
    """One-shot helper (CLI): the whole-tumour mask for these clicks, on FLAIR's grid.

    Example:
        >>> mask = click_segment(flair, t1c, fg=[(120, 90, 70)], device="cpu")  # doctest: +SKIP
    """
    return ClickSegmenter(flair, t1c, model=model, device=device).update(fg, bg)
