"""Tumour editing: refine a BraTS label map with boundary steps, clicks, scribbles, boxes and lassos.

`TumourEditor` holds the labels (0-3: 1 necrotic core, 2 oedema, 3 enhancing) as three
region probabilities TC, WT, ET (float16, the automatic result's own when it is given)
and one threshold per region. The labels are always ``compose(probabilities, thresholds)``:
0 outside WT; inside WT 3 where ET, else 1 where TC, else 2. So:

- **Boundary** (tighter / looser per region) moves a region's threshold so that about one
  voxel layer of the region (its boundary voxels) leaves or joins it: no network pass.
  Without soft probabilities (an initial label map alone) the editor builds them from the
  signed distance to each region's outline, so a step is an erosion / dilation.
- **Clicks** run the click model (`ClickSegmenter.logits`) and edit the whole tumour
  locally: a positive click adds the connected part of (model tumour - current) it touches,
  a negative click removes the connected part of (current - model tumour) it touches. The
  click logit is stored as WT probability there (mapped so that logit 0 = the threshold),
  so later boundary steps move those outlines too. Without any positive click the
  innermost voxel of the current tumour stands in for one (not stored). When the model
  answers the opposite of the click there, the voxels around it that look like the click's
  (`WAND_MM`, `WAND_Z`) are edited instead, and the result says so.
- **Scribbles** (brush strokes): a negative stroke removes the region's outer band as deep
  as the stroke reaches into it, connected to the stroke, within ``reach_mm`` of it (a
  stroke across a spurious shell removes that shell); a positive stroke from the outline adds
  the band outside the region as far out as the stroke reaches (away from it: the stroke only).
  Where the probabilities are soft the band holds the voxels as (un)likely as those crossed,
  and a whole-tumour stroke keeps only what the click model agrees with (stroke as clicks).
- **Box / lasso** on one slice: on that slice the region follows the lasso exactly (a box
  only bounds it); neighbouring slices adapt: voxels farther outside the outline than their
  slice distance are removed (up to ``reach_mm`` away), and a lasso fills the outline shrunk
  by the slice distance where the region continues.
- **Hand edits** (`apply_labels`: napari paint / fill / erase) set the edited voxels.

New WT voxels take their sub-region from the probabilities (oedema unless TC / ET say
otherwise); removed voxels become 0; sub-regions elsewhere are kept. Every edit is one
step of a single undo / redo history.

Example:
    >>> ed = TumourEditor(flair, t1c, labels=seg.labels, probabilities=seg.probabilities)  # doctest: +SKIP
    >>> ed.boundary("WT", -1)  # one step tighter  # doctest: +SKIP
    >>> ed.scribble([[120, 80, 70], [124, 80, 70]], positive=False)  # doctest: +SKIP
    >>> ed.undo()  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from ..models.prepost import region_thresholds
from ..volume import Volume
from .click_segment import T1_FOR_T1C
from .tumor_prompts import (
    REGIONS,
    Prompt,
    box_polygon,
    innermost_voxel,
    parse_prompt,
    polygon_mask,
    stroke_mask,
)

CHANNEL = {"TC": 0, "WT": 1, "ET": 2}
#: Channels set with a region (positive: it and those containing it; negative: it and those inside it).
UP = {"WT": (1,), "TC": (0, 1), "ET": (0, 1, 2)}
DOWN = {"WT": (0, 1, 2), "TC": (0, 2), "ET": (2,)}
REACH_MM = 30.0  # how far a scribble's band edit reaches along the outline
SLICE_REACH_MM = 6.0  # how far a box / lasso adapts neighbouring slices (chosen on the bench cases)
SLICE_SLOPE = 1.0  # a neighbouring slice may leave the outline by this many mm per mm of slice distance
CLICK_RADIUS_MM = 2.0
MAX_HISTORY = 60

#: A click the click model overrules (it answers the opposite at the click) edits the voxels around it
#: that look like the click's own: face-connected to it, within WAND_MM, z-scored FLAIR and T1c
#: within WAND_Z of the click's. Set a priori; bench/README.md gives the bench with other values.
WAND_MM = 15.0
WAND_Z = 0.5
#: What the user is told then, by the click's sign.
CLICK_OVERRULED = {
    True: f"The click model sees no tumour here, so the voxels that look like the click's within {WAND_MM:g} "
    "mm were added: Undo if that is too much, or outline this part with a lasso or box.",
    False: "The click model still sees tumour here, so the voxels that look like the click's within "
    f"{WAND_MM:g} mm were removed: Undo if that is too much, or scribble across the part to remove.",
}

_FULL = np.ones((3, 3, 3), bool)

__all__ = ["TumourEditor", "check_labels", "compose", "logit_to_probability"]

Box = tuple[slice, slice, slice]


def compose(prob: np.ndarray, thresholds: dict[str, float]) -> np.ndarray:
    """Labels 0-3 from (3, ...) TC / WT / ET probabilities: 0 outside WT, else 3 ET, 1 TC, 2 oedema.

    Example:
        >>> p = np.array([[0.9, 0.2], [0.9, 0.9], [0.1, 0.1]])[..., None]
        >>> compose(p, {"TC": .5, "WT": .5, "ET": .5}).ravel().tolist()
        [1, 2]
    """
    wt = prob[1] > thresholds["WT"]
    sub = np.where(prob[2] > thresholds["ET"], 3, np.where(prob[0] > thresholds["TC"], 1, 2))
    return np.where(wt, sub, 0).astype(np.uint8)


def check_labels(labels: Volume | np.ndarray, reference: Volume) -> np.ndarray:
    """An initial label map as uint8 0-3 on `reference`'s grid, or one sentence (ValueError).

    BraTS 2018 maps (4 = enhancing, no 3) are converted to the 2023 values.
    """
    if isinstance(labels, Volume):
        if not labels.same_grid(reference, atol=1e-3):
            raise ValueError(
                f"The initial label map {labels.shape} is not on the exam's grid {reference.shape} "
                "(shape and affine); give labels computed on this FLAIR."
            )
        data = np.asarray(labels.data)
    else:
        data = np.asarray(labels)
        if data.shape != tuple(reference.shape):
            raise ValueError(
                f"The initial label map {data.shape} does not match the exam's shape {reference.shape}."
            )
    floating = np.issubdtype(data.dtype, np.floating)
    if floating and not (np.all(np.isfinite(data)) and np.all(data == np.rint(data))):
        raise ValueError("The initial label map must hold whole numbers 0-3 (BraTS labels).")
    values = _values(data)
    if 4 in values and 3 not in values:
        data = np.where(data == 4, 3, data)
        values = (values - {4}) | {3}
    if not values <= {0, 1, 2, 3}:
        raise ValueError(
            f"The initial label map holds {sorted(values)}; only BraTS labels 0-3 can be refined."
        )
    return np.asarray(data, np.uint8)


def _values(data: np.ndarray) -> set[int]:
    """The distinct values of a label map (whole numbers); a count per value when they are small
    unsigned integers (a paint stroke's check: 10x faster than sorting 9 M voxels)."""
    if data.dtype.kind in "bu" and data.size and int(data.max()) < 256:
        return set(np.flatnonzero(np.bincount(data.ravel(), minlength=1)).tolist())
    return set(np.unique(data).astype(int).tolist())


@dataclass
class _Step:
    """One history entry: a box of probabilities, the thresholds and clicks before (or after) it."""

    what: str
    box: Box
    prob: np.ndarray
    thresholds: dict[str, float]
    clicks: list[tuple[tuple[int, int, int], bool]]
    info: dict[str, Any] = field(default_factory=dict)


class TumourEditor:
    """A label map (0-3) that interactions refine; one undo / redo history.

    Args:
        flair: FLAIR Volume (the grid of everything here).
        t1c: T1c on the same grid (needed for clicks only), or what stands in for it (`t1c_input`).
        labels: Initial labels (Volume or array on FLAIR's grid); None starts from nothing.
        probabilities: (3, X, Y, Z) TC / WT / ET probabilities behind `labels` (the automatic
            result's); None builds them from the labels' outlines.
        thresholds: The thresholds the labels were made with (default 0.5 each).
        segmenter: A `ClickSegmenter` for this exam, or a factory ``() -> ClickSegmenter``
            (made on the first click when None: the shipped click model).
        t1c_input: The contrast given as `t1c` ("T1" on an exam without T1c: the first click says so).

    Raises:
        ValueError: Labels or probabilities not on FLAIR's grid, or labels outside 0-3.
    """

    def __init__(
        self,
        flair: Volume,
        t1c: Volume | None = None,
        labels: Volume | np.ndarray | None = None,
        probabilities: np.ndarray | None = None,
        thresholds: dict[str, float] | None = None,
        segmenter: Any = None,
        device: str = "auto",
        t1c_input: str = "T1c",
    ) -> None:
        self.flair, self.t1c, self.device, self.t1c_input = flair, t1c, device, t1c_input
        self.shape = tuple(int(s) for s in flair.shape)
        self.spacing = tuple(float(s) for s in flair.spacing)
        self.thresholds = region_thresholds(thresholds or {})  # missing regions: 0.5
        self._segmenter = segmenter
        self.clicks: list[tuple[tuple[int, int, int], bool]] = []
        self._undo: list[_Step] = []
        self._redo: list[_Step] = []
        self.log: list[dict[str, Any]] = []  # every interaction, for provenance
        init = None if labels is None else check_labels(labels, flair)
        if probabilities is not None:
            prob = np.asarray(probabilities)
            if prob.shape != (3, *self.shape):
                raise ValueError(
                    f"The probabilities {prob.shape} are not (3, {', '.join(map(str, self.shape))}) "
                    "on the exam's grid."
                )
            self.prob = np.nan_to_num(prob.astype(np.float16, copy=True))
        elif init is not None:
            self.prob = _soft_from_labels(init, self.spacing)
        else:
            self.prob = np.zeros((3, *self.shape), np.float16)
        if init is not None:  # the editor starts exactly at the given labels
            wrong = compose(self.prob, self.thresholds) != init
            if wrong.any():
                self.prob[:, wrong] = _saturated(init[wrong])
        elif probabilities is not None:  # from nothing: keep the sub-region probabilities, no WT
            self.prob[1] = 0
        self._roi = _bbox(np.any(self.prob > 0, axis=0), 1, self.shape)  # outside it every label is 0
        self.labels = np.zeros(self.shape, np.uint8)
        self._recompose()
        self.source = "labels" if init is not None else "nothing"
        self.use_model_for_strokes = True  # whole-tumour strokes also ask the click model (needs T1c)
        self._z: np.ndarray | None = None  # z-scored FLAIR (and T1c) for overruled clicks

    # ------------------------------------------------------------------------- state
    def volume(self) -> Volume:
        """The current labels as a Volume on FLAIR's grid, with the interactions in its provenance."""
        prov = {
            "task": "tumour editing",
            "started_from": self.source,
            "thresholds": {k: round(v, 4) for k, v in self.thresholds.items()},
            "interactions": list(self.log),
        }
        seg = self.segmenter_if_made()
        if seg is not None and hasattr(seg, "loaded"):
            prov["click_model"] = {"model_id": seg.loaded.card.id, "weights_sha256": seg.loaded.sha256}
        return self.flair.with_data(
            self.labels.copy(), name=f"{self.flair.name}_tumour_edited", provenance=prov
        )

    def region(self, name: str) -> np.ndarray:
        """Boolean mask of WT (labels 1-3), TC (1, 3) or ET (3)."""
        return _region(self.labels, name)

    @property
    def can_undo(self) -> bool:
        """Whether there is a step to undo."""
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        """Whether there is a step to redo."""
        return bool(self._redo)

    def _begin(self, what: str, box: Box | None) -> _Step:
        box = box or tuple(slice(0, s) for s in self.shape)  # type: ignore[assignment]
        return _Step(
            what, box, self.prob[(slice(None), *box)].copy(), dict(self.thresholds), list(self.clicks)
        )

    def _recompose(self) -> None:
        """Labels from the probabilities and thresholds where any probability is above 0."""
        if self._roi is not None:
            self.labels[self._roi] = compose(self.prob[(slice(None), *self._roi)], self.thresholds)

    def _grow_roi(self, box: Box) -> None:
        if any(b.stop <= b.start for b in box):
            return
        if all(b.start == 0 and b.stop == n for b, n in zip(box, self.shape, strict=True)):
            self._roi = _bbox(np.any(self.prob > 0, axis=0), 1, self.shape)
        elif self._roi is None:
            self._roi = box
        else:
            self._roi = tuple(
                slice(min(a.start, b.start), max(a.stop, b.stop))  # type: ignore[assignment]
                for a, b in zip(self._roi, box, strict=True)
            )

    def _commit(self, step: _Step, changed_thresholds: bool = False, **info: Any) -> dict[str, Any]:
        if changed_thresholds:  # the probabilities did not change
            self._recompose()
        else:
            self._grow_roi(step.box)
            self.labels[step.box] = compose(self.prob[(slice(None), *step.box)], self.thresholds)
        self._undo.append(step)
        del self._undo[:-MAX_HISTORY]
        self._redo.clear()
        entry = {"what": step.what, **info}
        self.log.append(entry)
        return entry

    def _swap(self, step: _Step) -> _Step:
        """Put `step`'s saved state back; return the state it replaced (for the other stack)."""
        at = (slice(None), *step.box)
        other = _Step(
            step.what, step.box, self.prob[at].copy(), dict(self.thresholds), list(self.clicks), step.info
        )
        self.prob[at] = step.prob
        full = step.thresholds != self.thresholds
        self.thresholds, self.clicks = dict(step.thresholds), list(step.clicks)
        if full:
            self._recompose()
        else:
            self._grow_roi(step.box)
            self.labels[step.box] = compose(self.prob[at], self.thresholds)
        return other

    def undo(self) -> bool:
        """Undo the last interaction (any kind); False when there is none."""
        return self._replay(self._undo, self._redo, "undo")

    def redo(self) -> bool:
        """Redo the last undone interaction; False when there is none."""
        return self._replay(self._redo, self._undo, "redo")

    def _replay(self, source: list[_Step], target: list[_Step], what: str) -> bool:
        """Swap the newest step of `source` back in; the state it replaces goes onto `target`."""
        if not source:
            return False
        target.append(self._swap(source.pop()))
        self.log.append({"what": what})
        return True

    # ------------------------------------------------------------------------- boundary
    def boundary(self, region: str, steps: int) -> dict[str, Any]:
        """Move a region's outline: ``steps`` < 0 tighter, > 0 looser, about one voxel layer each.

        The region's threshold moves so that as many voxels leave (join) the region as it
        has boundary voxels; voxels set by strokes, boxes, lassos and hand edits stay.
        """
        region = _check_region(region)
        step = self._begin(f"boundary {region} {steps:+d}", (slice(0, 0),) * 3)  # type: ignore[arg-type]
        ch = CHANNEL[region]
        for _ in range(abs(int(steps))):
            if self._roi is None:
                break
            box = self._roi  # every label outside is 0, every probability 0
            m = _region(self.labels[box], region)
            t = self.thresholds[region]
            if not m.any():
                break
            p = self.prob[(ch, *box)]
            if steps < 0:
                layer = int((m & ~ndimage.binary_erosion(m)).sum())
                cand = p[m & (p < 1)]
                if not cand.size:
                    break
                t16 = _ranked(cand, layer, lowest=True)  # about `layer` voxels leave (p <= t16)
            else:
                layer = int((ndimage.binary_dilation(m) & ~m).sum())
                cand = p[~m & (p > 0) & (p <= t)]
                if not cand.size:
                    break
                t16 = np.nextafter(_ranked(cand, layer, lowest=False), np.float16(0))  # about `layer` join
            self.thresholds[region] = float(
                np.clip(np.float16(t16), 0, np.nextafter(np.float16(1), np.float16(0)))
            )
            self._recompose()
        return self._commit(
            step, True, region=region, steps=int(steps), threshold=round(self.thresholds[region], 4)
        )

    # ------------------------------------------------------------------------- clicks
    def segmenter(self) -> Any:
        """The click model session (made on first use)."""
        if self._segmenter is None:
            from .click_segment import ClickSegmenter

            if self.t1c is None:
                raise ValueError(
                    "Clicks need T1c (or T1 in its place) besides FLAIR: the click model sees two contrasts."
                )
            self._segmenter = ClickSegmenter(
                self.flair, self.t1c, device=self.device, t1c_input=self.t1c_input
            )
        elif not hasattr(self._segmenter, "logits"):
            self._segmenter = self._segmenter()  # a factory
        return self._segmenter

    def segmenter_if_made(self) -> Any:
        """The click model session when one was used, else None."""
        return self._segmenter if hasattr(self._segmenter, "logits") else None

    def click(self, voxel: Sequence[float], positive: bool = True, cancel: Any = None) -> dict[str, Any]:
        """A positive or negative click at a voxel index of FLAIR's array; whole tumour only."""
        prompt = parse_prompt(
            {"kind": "click", "sign": positive, "points": [list(voxel)]}, self.shape, self.flair.affine
        )
        at = tuple(int(v) for v in prompt.points[0])
        clicks = [*self.clicks, (at, bool(positive))]
        fg = [c for c, p in clicks if p]
        bg = [c for c, p in clicks if not p]
        wt = self.labels > 0
        if not fg:
            if not wt.any():
                raise ValueError("Start with a positive click inside the tumour (there is no tumour yet).")
            fg = [innermost_voxel(wt, self.spacing)]
        box, logit = self.segmenter().logits(fg, bg, mask=wt, cancel=cancel)
        step = self._begin(f"click {'+' if positive else '-'}", box)
        current = wt[box]
        new = logit > 0
        start = np.array([b.start for b in box])
        local = np.asarray(at) - start
        change = (new & ~current) if positive else (current & ~new)
        touched = _touching(change, local, 2)
        p = self.prob[(1, *box)]
        t = self.thresholds["WT"]
        p[touched] = logit_to_probability(logit[touched], t)
        ball = _ball(local, new.shape, CLICK_RADIUS_MM, self.spacing)  # a click wins where it is
        inside = all(0 <= c < n for c, n in zip(local, new.shape, strict=True))
        overruled = inside and bool(new[tuple(local)]) != bool(positive)
        if overruled:  # the user knows better here: the voxels that look like the click's
            ball |= self._similar_around(at, box, ~current if positive else current)
        p[ball] = 1 if positive else 0
        if not positive:
            self.prob[(0, *box)][touched | ball] = 0
            self.prob[(2, *box)][touched | ball] = 0
        self.clicks = clicks
        changed = int((touched | ball).sum())
        info: dict[str, Any] = {"voxel": list(at), "positive": bool(positive), "changed": changed}
        notes = [T1_FOR_T1C] if self.t1c_input != "T1c" and len(clicks) == 1 else []
        notes += [CLICK_OVERRULED[bool(positive)]] if overruled else []
        if notes:
            info["note"] = " ".join(notes)
        return self._commit(step, **info)

    def _similar_around(self, at: tuple[int, int, int], box: Box, allowed: np.ndarray) -> np.ndarray:
        """Voxels of `box` (`allowed` there) face-connected to `at` within WAND_MM whose z-scored FLAIR and
        T1c lie within WAND_Z of the click's own (median of its 3x3x3 neighbourhood)."""
        z = self._zscores()[(slice(None), *box)]
        local = np.asarray(at) - [b.start for b in box]
        near = tuple(slice(max(0, c - 1), c + 2) for c in local)
        ref = np.median(z[(slice(None), *near)].reshape(z.shape[0], -1), axis=1)
        similar = np.all(np.abs(z - ref[:, None, None, None]) <= WAND_Z, axis=0)
        similar &= allowed & _ball(local, allowed.shape, WAND_MM, self.spacing)
        similar[tuple(local)] = True
        lab, _ = ndimage.label(similar)
        return lab == lab[tuple(local)]

    def _zscores(self) -> np.ndarray:
        """Z-scored FLAIR (and T1c), made on first use."""
        if self._z is None:
            from ..models.prepost import zscore_foreground

            vols = [self.flair] + ([self.t1c] if self.t1c is not None else [])
            self._z = np.stack([zscore_foreground(np.asarray(v.data)) for v in vols]).astype(np.float16)
        return self._z

    # ------------------------------------------------------------------------- strokes
    def scribble(
        self,
        points: Sequence[Sequence[float]],
        positive: bool,
        region: str = "WT",
        radius_mm: float = 1.0,
        reach_mm: float = REACH_MM,
    ) -> dict[str, Any]:
        """A brush stroke (polyline of voxel coordinates): see the module docstring."""
        prompt = parse_prompt(
            {
                "kind": "scribble",
                "sign": positive,
                "points": [list(p) for p in points],
                "region": region,
                "radius_mm": radius_mm,
            },
            self.shape,
            self.flair.affine,
        )
        return self._scribble(prompt, reach_mm)

    def _model_agrees(
        self, box: Box, change: np.ndarray, stroke: np.ndarray, prompt: Prompt, cancel: Any
    ) -> np.ndarray:
        """Keep the part of a whole-tumour stroke edit that the click model agrees with.

        The stroke's ends and its deepest voxel become clicks of its sign for one network pass
        (not stored); the stroke's own voxels are always edited.
        """
        wt = self.labels > 0
        fg = [c for c, p in self.clicks if p]
        bg = [c for c, p in self.clicks if not p]
        pts = [tuple(int(v) for v in np.rint(q)) for q in prompt.points[[0, -1]]]
        (fg if prompt.positive else bg).extend(pts)
        if not fg:
            if not wt.any():
                return change
            fg = [innermost_voxel(wt, self.spacing)]
        mbox, logit = self.segmenter().logits(fg, bg, mask=wt, cancel=cancel)
        agree = np.zeros(change.shape, bool)
        inter = tuple(
            slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(box, mbox, strict=True)
        )
        if all(s.stop > s.start for s in inter):
            sub = (
                logit[
                    tuple(
                        slice(s.start - b.start, s.stop - b.start) for s, b in zip(inter, mbox, strict=True)
                    )
                ]
                > 0
            )
            at = tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(inter, box, strict=True))
            agree[at] = sub if prompt.positive else ~sub
        return _touching_mask(change & (agree | stroke), stroke)

    def _scribble(self, prompt: Prompt, reach_mm: float = REACH_MM, cancel: Any = None) -> dict[str, Any]:
        region = prompt.region
        sbox, stroke = stroke_mask(prompt.points, self.shape, self.spacing, prompt.radius_mm)
        margin = np.ceil(reach_mm / np.asarray(self.spacing)).astype(int) + 2
        box = tuple(
            slice(max(0, s.start - m), min(n, s.stop + m))
            for s, m, n in zip(sbox, margin, self.shape, strict=True)
        )
        inner = tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(sbox, box, strict=True))
        s_full = np.zeros(tuple(b.stop - b.start for b in box), bool)
        s_full[inner] = stroke
        mask = _region(self.labels[box], region)
        near = ndimage.distance_transform_edt(~s_full, sampling=self.spacing) <= reach_mm
        p = self.prob[(CHANNEL[region], *box)]
        slack = 1.5 * min(self.spacing)  # how much deeper than the stroke the band may reach
        if prompt.positive:
            if mask.any():
                depth_map = ndimage.distance_transform_edt(~mask, sampling=self.spacing)
                crossed = s_full & ~mask
                depth = float(depth_map[crossed].max()) if crossed.any() else 0.0
                touches = float(depth_map[s_full].min()) <= 1.01 * max(self.spacing)  # starts at the outline
                band = (
                    ~mask & near & _band(p, crossed, depth_map, depth, slack, positive=True)
                    if touches
                    else np.zeros_like(mask)
                )  # away from the region: only the stroke itself
            else:
                band = np.zeros_like(mask)
            change = _touching_mask(band | (s_full & ~mask), s_full)
        else:
            crossed = s_full & mask
            if not crossed.any():
                raise ValueError(
                    f"The stroke does not cross the {_NAMES[region]}; draw it across the part to remove."
                )
            depth_map = ndimage.distance_transform_edt(mask, sampling=self.spacing)
            depth = float(depth_map[crossed].max())
            band = mask & near & _band(p, crossed, depth_map, depth, slack, positive=False)
            change = _touching_mask(band | crossed, s_full)
        if (
            region == "WT"
            and self.use_model_for_strokes
            and (self.t1c is not None or self._segmenter is not None)
        ):
            change = self._model_agrees(box, change, s_full, prompt, cancel)
        step = self._begin(f"scribble {region} {'+' if prompt.positive else '-'}", box)
        self._set(box, change, region, prompt.positive)
        return self._commit(step, **prompt.describe(), changed=int(change.sum()))

    def _set(self, box: Box, where: np.ndarray, region: str, positive: bool) -> None:
        """Saturate the probabilities of `region` on `where` (a mask on `box`), keeping the hierarchy."""
        for ch in (UP if positive else DOWN)[region]:
            self.prob[(ch, *box)][where] = 1 if positive else 0

    def prompt(self, prompt: Prompt, cancel: Any = None) -> dict[str, Any]:
        """Apply one checked prompt (`tumor_prompts.parse_prompt`) of any kind."""
        if prompt.kind == "click":
            return self.click(prompt.points[0], prompt.positive, cancel=cancel)
        if prompt.kind == "scribble":
            return self._scribble(prompt, cancel=cancel)
        return self._slice_prompt(prompt, cancel)

    def box(
        self,
        corner_a: Sequence[float],
        corner_b: Sequence[float],
        region: str = "WT",
        axis: int | None = None,
    ) -> dict[str, Any]:
        """A box on one slice: the region lies inside it there (voxel corners)."""
        item = {"kind": "box", "points": [list(corner_a), list(corner_b)], "region": region, "axis": axis}
        return self._slice_prompt(parse_prompt(item, self.shape, self.flair.affine))

    def lasso(
        self,
        points: Sequence[Sequence[float]],
        region: str = "WT",
        axis: int | None = None,
        positive: bool = True,
    ) -> dict[str, Any]:
        """A closed outline on one slice: the region follows it there (voxel coordinates)."""
        item = {
            "kind": "lasso",
            "points": [list(p) for p in points],
            "region": region,
            "axis": axis,
            "sign": positive,
        }
        return self._slice_prompt(parse_prompt(item, self.shape, self.flair.affine))

    def _slice_prompt(self, prompt: Prompt, cancel: Any = None) -> dict[str, Any]:
        axis, index, region = int(prompt.slice_axis), int(prompt.slice_index), prompt.region  # type: ignore[arg-type]
        other = [a for a in range(3) if a != axis]
        plane = tuple(self.shape[a] for a in other)
        poly = box_polygon(prompt) if prompt.kind == "box" else prompt.points[:, other]
        inside = polygon_mask(poly, plane)
        if not prompt.positive:  # a negative lasso removes the region inside the outline on that slice
            step = self._begin(f"lasso {region} -", _slab(axis, index, index + 1, self.shape))
            where = np.expand_dims(inside, axis)
            self._set(step.box, where & _region(self.labels[step.box], region), region, False)
            return self._commit(step, **prompt.describe())
        sp_in = [self.spacing[a] for a in other]
        out_dist = ndimage.distance_transform_edt(~inside, sampling=sp_in)
        in_dist = ndimage.distance_transform_edt(inside, sampling=sp_in)
        reach = int(np.ceil(SLICE_REACH_MM / self.spacing[axis]))
        lo, hi = max(0, index - reach), min(self.shape[axis], index + reach + 1)
        helper = (
            prompt.kind == "box"
            and region == "WT"
            and not _region(self._plane(axis, index), "WT")[inside].any()
        )
        step = self._begin(f"{prompt.kind} {region}", None if helper else _slab(axis, lo, hi, self.shape))
        if helper:  # an empty box: the click model finds the tumour first (part of this step)
            centre = np.zeros(3)
            centre[axis] = index
            centre[other] = np.rint(poly.mean(0))
            self.click(centre, True, cancel=cancel)
            self._undo.pop()
            self.log.pop()
            step.clicks = list(self.clicks[:-1])
        for j in range(lo, hi):
            d = abs(j - index) * self.spacing[axis]
            cur = _region(self._plane(axis, j), region)
            at = _slab(axis, j, j + 1, self.shape)
            if j == index:
                remove = cur & ~inside
                add = inside & ~cur if prompt.kind == "lasso" else np.zeros_like(inside)
            else:
                tol = SLICE_SLOPE * d + 0.5
                remove = cur & (out_dist > tol) & (out_dist <= tol + SLICE_REACH_MM)
                add = np.zeros_like(inside)
                if prompt.kind == "lasso" and (cur & inside).any():
                    add = (in_dist > SLICE_SLOPE * d) & ~cur
            self._set(at, np.expand_dims(remove, axis), region, False)
            self._set(at, np.expand_dims(add, axis), region, True)
        return self._commit(step, **prompt.describe())

    def _plane(self, axis: int, index: int) -> np.ndarray:
        return np.take(self.labels, index, axis=axis)

    # ------------------------------------------------------------------------- hand edits
    def apply_labels(self, labels: np.ndarray, what: str = "hand edit") -> dict[str, Any]:
        """Take a whole edited label map (napari paint / fill / erase) as one history step."""
        new = check_labels(np.asarray(labels), self.flair)
        diff = new != self.labels
        if not diff.any():
            return {"what": what, "changed": 0}
        box = _bbox(diff, 0, self.shape)
        assert box is not None
        step = self._begin(what, box)
        d = diff[box]
        self.prob[(slice(None), *box)][:, d] = _saturated(new[box][d])
        return self._commit(step, changed=int(d.sum()))

    def run(
        self,
        prompts: Sequence[Prompt],
        cancel: Any = None,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Apply prompts in order (the CLI's protocol); one history step each."""
        out = []
        for n, p in enumerate(prompts):
            if progress:
                progress(n, len(prompts), f"{p.kind} {n + 1}/{len(prompts)}")
            start = time.perf_counter()
            entry = self.prompt(p, cancel=cancel)
            entry["seconds"] = round(time.perf_counter() - start, 3)
            out.append(entry)
        return out


# ----------------------------------------------------------------------------- helpers
_NAMES = {"WT": "whole tumour", "TC": "tumour core", "ET": "enhancing tumour"}


def _ranked(values: np.ndarray, count: int, lowest: bool) -> np.float16:
    """The float16 value with `count` of `values` (non-negative float16) at or below it (lowest) or
    at or above it; the extreme value when there are fewer. A histogram of the bit patterns (which
    order non-negative float16 values) makes it linear in the number of values."""
    counts = np.bincount(np.ascontiguousarray(values, np.float16).view(np.uint16), minlength=1)
    present = np.flatnonzero(counts)
    if lowest:
        i = int(np.searchsorted(np.cumsum(counts), max(count, 1)))
        i = min(i, int(present[-1]))
    else:
        j = int(np.searchsorted(np.cumsum(counts[::-1]), max(count, 1)))
        i = max(len(counts) - 1 - j, int(present[0]))
    return np.array([i], np.uint16).view(np.float16)[0]


def _band(
    p: np.ndarray, crossed: np.ndarray, depth_map: np.ndarray, depth: float, slack: float, positive: bool
) -> np.ndarray:
    """The band a stroke edits: as deep as the stroke reaches, or, where the probabilities are
    soft, every voxel as (un)likely as those the stroke crossed, at most `slack` deeper."""
    soft = crossed & (p > 0) & (p < 1)
    if not soft.any():
        return depth_map <= depth + 1e-3
    near = depth_map <= depth + slack
    if positive:  # join: voxels at least as likely as the least likely one crossed
        return near & (p >= p[soft].min())
    return near & (p <= p[soft].max())  # leave: voxels at most as likely as the most likely one crossed


def _check_region(region: str) -> str:
    r = str(region).upper()
    if r not in REGIONS:
        raise ValueError(f"Unknown region {region!r}; use WT, TC or ET.")
    return r


def _region(labels: np.ndarray, name: str) -> np.ndarray:
    if name == "WT":
        return labels > 0
    if name == "TC":
        return (labels == 1) | (labels == 3)
    return labels == 3


def _saturated(labels: np.ndarray) -> np.ndarray:
    """(3, N) probabilities 0 / 1 that compose to `labels` (N,) exactly."""
    return np.stack([(labels == 1) | (labels == 3), labels > 0, labels == 3]).astype(np.float16)


def _soft_from_labels(labels: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Probabilities from the signed distance (mm) to each region's outline: 0.5 on it, ~0.73 one voxel in."""
    prob = np.zeros((3, *labels.shape), np.float16)
    box = _bbox(labels > 0, 8, labels.shape)
    if box is None:
        return prob
    sub = labels[box]
    for ch, name in enumerate(("TC", "WT", "ET")):
        m = _region(sub, name)
        if not m.any():
            continue
        sd = ndimage.distance_transform_edt(m, sampling=spacing) - ndimage.distance_transform_edt(
            ~m, sampling=spacing
        )
        prob[(ch, *box)] = (1 / (1 + np.exp(-sd / min(spacing)))).astype(np.float16)
    return prob


def logit_to_probability(logit: np.ndarray, t: float) -> np.ndarray:
    """Map the click model's logit to a probability with logit 0 at threshold `t` (monotone)."""
    s = 1 / (1 + np.exp(-np.clip(logit, -30, 30)))
    out = np.where(s > 0.5, t + (1 - t) * (s - 0.5) / 0.5, t * s / 0.5)
    out = np.where(logit > 0, np.maximum(out, np.nextafter(np.float16(t), np.float16(1))), np.minimum(out, t))
    return out.astype(np.float16)


def _bbox(mask: np.ndarray, margin: int, shape: Sequence[int]) -> Box | None:
    if not mask.any():
        return None
    out = []
    for ax in range(3):
        nz = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))
        out.append(slice(max(0, int(nz[0]) - margin), min(int(shape[ax]), int(nz[-1]) + margin + 1)))
    return tuple(out)  # type: ignore[return-value]


def _slab(axis: int, lo: int, hi: int, shape: Sequence[int]) -> Box:
    out = [slice(0, int(s)) for s in shape]
    out[axis] = slice(lo, hi)
    return tuple(out)  # type: ignore[return-value]


def _touching(change: np.ndarray, at: np.ndarray, radius: int) -> np.ndarray:
    """Connected parts (26) of `change` within `radius` voxels of `at` (box coordinates)."""
    seed = np.zeros_like(change)
    sl = tuple(slice(max(0, int(c) - radius), max(0, int(c) + radius + 1)) for c in at)
    seed[sl] = True
    return _touching_mask(change, seed & change)


def _touching_mask(change: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Connected parts (26) of `change` that hold a voxel of `seed`."""
    lab, n = ndimage.label(change, structure=_FULL)
    if n == 0:
        return np.zeros_like(change)
    keep = np.zeros(n + 1, bool)
    keep[np.unique(lab[seed & change])] = True
    keep[0] = False
    return keep[lab]


def _ball(centre: np.ndarray, shape: Sequence[int], radius_mm: float, spacing: Sequence[float]) -> np.ndarray:
    grids = np.ogrid[tuple(slice(0, int(s)) for s in shape)]
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing, strict=True))
    return np.asarray(d2 <= radius_mm**2)

