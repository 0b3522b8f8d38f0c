"""Prompts for tumour editing: clicks, scribbles, boxes and lassos, checked and rasterised.

A prompt is drawn by a user (viewer) or read from a JSON file (CLI ``click-segment
--prompts``). Coordinates are voxel indices (i, j, k) of the exam's array as loaded, or
world millimetres of the image header (``"coords": "mm"``, nibabel's RAS+ convention).

- click: one point, positive (tumour) or negative (not tumour).
- scribble: a brush stroke, a polyline of points with a radius in mm.
- box: two opposite corners on one slice (the tumour lies inside the box there).
- lasso: three or more points on one slice, the outline of the region on that slice.

Every check fails with one sentence (ValueError), before anything is changed.

Example:
    >>> p = parse_prompt({"kind": "lasso", "sign": "+", "points": [[5, 2, 3], [5, 8, 3], [5, 8, 9]]},
    ...                  (10, 10, 12), np.eye(4))
    >>> p.slice_axis, p.slice_index
    (0, 5)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
from scipy import ndimage

KINDS = ("click", "scribble", "box", "lasso")
REGIONS = ("WT", "TC", "ET")  # whole tumour, tumour core, enhancing tumour

__all__ = [
    "KINDS",
    "REGIONS",
    "Prompt",
    "innermost_voxel",
    "parse_prompt",
    "parse_prompts",
    "polygon_mask",
    "stroke_mask",
]


@dataclass(frozen=True)
class Prompt:
    """A checked prompt in voxel coordinates of the exam's array.

    Attributes:
        kind: click | scribble | box | lasso.
        positive: True adds tumour (or, for a box or lasso, says where the tumour is).
        points: (N, 3) float voxel coordinates.
        region: WT | TC | ET, the region the prompt edits (clicks: WT only).
        radius_mm: Brush radius of a scribble.
        slice_axis, slice_index: The slice a box or lasso is drawn on (None for others).
    """

    kind: str
    positive: bool
    points: np.ndarray
    region: str = "WT"
    radius_mm: float = 1.0
    slice_axis: int | None = None
    slice_index: int | None = None

    def describe(self) -> dict[str, Any]:
        """JSON-ready record (provenance, history)."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "sign": "+" if self.positive else "-",
            "region": self.region,
            "points": np.round(self.points, 2).tolist(),
        }
        if self.kind == "scribble":
            out["radius_mm"] = self.radius_mm
        if self.slice_axis is not None:
            out["slice"] = {"axis": self.slice_axis, "index": self.slice_index}
        return out


def _sign(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("+", "positive", "pos", "fg", "1", "true", "tumour", "tumor"):
        return True
    if text in ("-", "negative", "neg", "bg", "0", "false", "background"):
        return False
    raise ValueError(f"A prompt's sign must be '+' or '-' (positive or negative), not {value!r}.")


def parse_prompt(item: Any, shape: Sequence[int], affine: np.ndarray, *, coords: str | None = None) -> Prompt:
    """One prompt from a JSON-like mapping, checked against the exam's grid.

    Keys: ``kind``, ``sign`` ('+' / '-', default '+'), ``points`` (a list of triples),
    ``coords`` ('voxel' default, or 'mm'), ``region`` (WT default), ``radius_mm`` (scribbles),
    ``axis`` (optional: the slice axis of a box or lasso; found from the points otherwise).

    Raises:
        ValueError: One sentence: unknown kind, points outside the scan, a lasso with fewer
            than three points, a box of zero size, points not on one slice.
    """
    if not isinstance(item, dict):
        raise ValueError("Each prompt must be an object with 'kind', 'sign' and 'points'.")
    kind = str(item.get("kind", "")).lower()
    if kind not in KINDS:
        raise ValueError(f"Unknown prompt kind {item.get('kind')!r}; use one of {', '.join(KINDS)}.")
    positive = _sign(item.get("sign", "+"))
    region = str(item.get("region", "WT")).upper()
    if region not in REGIONS:
        raise ValueError(f"Unknown region {item.get('region')!r}; use WT, TC or ET.")
    if kind == "click" and region != "WT":
        raise ValueError("Clicks edit the whole tumour (WT) only; use a scribble for core or enhancing.")
    raw = item.get("points")
    if kind == "click" and raw is None and "point" in item:
        raw = [item["point"]]
    pts = _points(raw, kind)
    system = str(item.get("coords", coords or "voxel")).lower()
    if system in ("mm", "world"):
        inv = np.linalg.inv(np.asarray(affine, float))
        pts = pts @ inv[:3, :3].T + inv[:3, 3]
    elif system not in ("voxel", "index", "ijk"):
        raise ValueError(f"Prompt coordinates must be 'voxel' or 'mm', not {system!r}.")
    shape_a = np.asarray(shape[:3], float)
    outside = [p for p in pts if np.any(np.rint(p) < 0) or np.any(np.rint(p) > shape_a - 1)]
    if outside:
        at = ", ".join(f"{v:.1f}" for v in outside[0])
        raise ValueError(
            f"The {kind} point ({at}) lies outside the scan of shape {tuple(int(s) for s in shape[:3])}."
        )
    radius = float(item.get("radius_mm", 1.0))
    if not math.isfinite(radius) or radius < 0 or radius > 30:
        raise ValueError("A scribble's radius_mm must be between 0 and 30 mm.")
    if kind == "click":
        if len(pts) != 1:
            raise ValueError("A click has exactly one point.")
        return Prompt(kind, positive, np.rint(pts), region)
    if kind == "scribble":
        return Prompt(kind, positive, pts, region, radius)
    if kind == "lasso" and len(pts) < 3:
        raise ValueError(f"A lasso needs at least three points on one slice; this one has {len(pts)}.")
    if kind == "box" and len(pts) != 2:
        raise ValueError(
            f"A box is given by two opposite corners on one slice; this one has {len(pts)} points."
        )
    axis = _slice_axis(pts, kind, item.get("axis"))
    index = int(np.rint(pts[0, axis]))
    pts = pts.copy()
    pts[:, axis] = index
    other = [a for a in range(3) if a != axis]
    if kind == "box":
        size = np.abs(np.rint(pts[1, other]) - np.rint(pts[0, other]))
        if np.any(size < 1):
            raise ValueError("The box has zero size; drag its corners apart on the slice.")
    else:
        flat = pts[:, other]
        area = 0.5 * abs(
            float(np.dot(flat[:, 0], np.roll(flat[:, 1], 1)) - np.dot(flat[:, 1], np.roll(flat[:, 0], 1)))
        )
        if area < 0.5:
            raise ValueError("The lasso encloses no area; draw a closed outline with at least three points.")
    return Prompt(kind, positive, pts, region, radius, axis, index)


def _points(raw: Any, kind: str) -> np.ndarray:
    try:
        rows = [[float(v) for v in p] for p in raw]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"A {kind}'s points must be a list of (i, j, k) triples.") from exc
    if not rows or any(len(r) != 3 or not all(math.isfinite(v) for v in r) for r in rows):
        raise ValueError(f"A {kind}'s points must be a non-empty list of (i, j, k) triples.")
    return np.asarray(rows, float)


def _slice_axis(pts: np.ndarray, kind: str, axis: Any) -> int:
    if axis is not None:
        try:
            a = int(axis)
        except (TypeError, ValueError):
            a = -1
        if a not in (0, 1, 2):
            raise ValueError(f"A {kind}'s axis must be 0, 1 or 2.")
        if np.ptp(np.rint(pts[:, a])) > 0:
            raise ValueError(f"The {kind}'s points do not all lie on one slice of axis {a}.")
        return a
    flat = [a for a in range(3) if np.ptp(np.rint(pts[:, a])) == 0]
    if not flat:
        raise ValueError(f"The {kind}'s points do not lie on one slice; draw it on a single slice.")
    if len(flat) > 1:
        if kind == "box":
            raise ValueError("The box has zero size; drag its corners apart on the slice.")
        raise ValueError("The lasso encloses no area; draw a closed outline with at least three points.")
    return flat[0]


def parse_prompts(items: Any, shape: Sequence[int], affine: np.ndarray) -> list[Prompt]:
    """A JSON list of prompts (or ``{"prompts": [...], "coords": ...}``), all checked before any is used."""
    coords = None
    if isinstance(items, dict):
        coords = items.get("coords")
        items = items.get("prompts")
    if not isinstance(items, list) or not items:
        raise ValueError("The prompts must be a non-empty JSON list of {kind, sign, points} objects.")
    out = []
    for n, item in enumerate(items, 1):
        try:
            out.append(parse_prompt(item, shape, affine, coords=coords))
        except ValueError as exc:
            raise ValueError(f"Prompt {n}: {exc}") from None
    return out


# ----------------------------------------------------------------------------- rasterising
def stroke_mask(
    points: np.ndarray, shape: Sequence[int], spacing: Sequence[float], radius_mm: float
) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    """Voxels within `radius_mm` of a polyline (a brush stroke), as (box, mask on the box).

    A single voxel line (no gaps) when the radius is under half a voxel.

    Example:
        >>> box, m = stroke_mask(np.array([[2, 2, 2], [2, 6, 2]]), (9, 9, 9), (1, 1, 1), 0.0)
        >>> int(m.sum())
        5
    """
    pts = np.asarray(points, float).reshape(-1, 3)
    sp = np.asarray(spacing, float)
    samples = [pts[:1]]
    for a, b in pairwise(pts):
        n = max(1, int(np.ceil(np.abs(b - a).max() * 2)))  # half-voxel steps
        samples.append(a + (b - a) * (np.arange(1, n + 1)[:, None] / n))
    dense = np.concatenate(samples)
    reach = np.floor(radius_mm / sp).astype(int)
    lo = np.maximum(np.floor(dense.min(0)).astype(int) - reach - 1, 0)
    hi = np.minimum(np.ceil(dense.max(0)).astype(int) + reach + 2, np.asarray(shape[:3]))
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    mask = np.zeros(tuple(int(b - a) for a, b in zip(lo, hi, strict=True)), bool)
    centres = np.unique(np.rint(dense).astype(int), axis=0) - lo
    centres = centres[np.all((centres >= 0) & (centres < mask.shape), axis=1)]
    mask[tuple(centres.T)] = True
    if radius_mm >= 0.5 * sp.min():
        dist = ndimage.distance_transform_edt(~mask, sampling=sp)
        mask = dist <= radius_mm
    return box, mask  # type: ignore[return-value]


def polygon_mask(points2d: np.ndarray, shape2d: Sequence[int]) -> np.ndarray:
    """Pixels of a 2-D grid inside a closed polygon, its outline included.

    Example:
        >>> int(polygon_mask(np.array([[1, 1], [1, 4], [4, 4], [4, 1]]), (6, 6)).sum())
        16
    """
    from skimage.draw import polygon, polygon_perimeter

    pts = np.asarray(points2d, float)
    out = np.zeros(tuple(int(s) for s in shape2d), bool)
    rr, cc = polygon(pts[:, 0], pts[:, 1], shape=out.shape)
    out[rr, cc] = True
    rr, cc = polygon_perimeter(np.rint(pts[:, 0]), np.rint(pts[:, 1]), shape=out.shape, clip=False)
    ok = (rr >= 0) & (rr < out.shape[0]) & (cc >= 0) & (cc < out.shape[1])
    out[rr[ok], cc[ok]] = True
    return out


def box_polygon(prompt: Prompt) -> np.ndarray:
    """The four 2-D corners (in the slice's two other axes) of a box prompt."""
    other = [a for a in range(3) if a != prompt.slice_axis]
    (a0, b0), (a1, b1) = np.rint(prompt.points[:, other])
    return np.array([[a0, b0], [a0, b1], [a1, b1], [a1, b0]], float)


def innermost_voxel(mask: np.ndarray, spacing: Sequence[float] | None) -> tuple[int, int, int]:
    """Voxel of `mask` farthest (in mm) from its edge; the scan's border counts as an edge."""
    idx = np.argwhere(mask)
    lo, hi = idx.min(0), idx.max(0) + 1
    sub = np.pad(mask[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))], 1)
    edt = ndimage.distance_transform_edt(sub, sampling=spacing)
    at = np.array(np.unravel_index(int(edt.argmax()), edt.shape)) - 1 + lo
    return tuple(int(v) for v in at)  # type: ignore[return-value]
