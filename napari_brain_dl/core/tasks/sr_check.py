"""Self-check of the self-supervised super-resolution on in-plane slices it never trained on.

Some acquired (in-plane) slices are held out of the per-scan training. They are degraded like
the training slices (thick-slice profile along one in-plane axis, B-spline back; once along
each in-plane axis, the two results averaged as the two through-plane orientations are), so
B-spline and the learnt model can both be scored against the real slice, inside its foreground. The
learnt part is then blended with B-spline, ``B + w (SR - B)``, with the weight ``w`` in [0, 1]
that minimises the squared error on those slices (closed form); when that blend gains less than
`MIN_BLEND_GAIN_DB` there, ``w = 0``: plain B-spline. So on the held-out slices the result is
never below B-spline by construction; ``w = 1`` keeps the learnt result unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: One acquired slice in this many (among those with enough foreground) is held out of training.
HELD_OUT_EVERY = 6
#: Foreground: above this fraction of the scan's 99th percentile (as the bench's masks).
FOREGROUND = 0.1
#: A blend that gains less than this over B-spline on the held-out slices is not worth it: B-spline.
MIN_BLEND_GAIN_DB = 0.05


def held_out_slices(data: np.ndarray, axis: int) -> np.ndarray:
    """Indices along `axis` (the acquired slices) kept out of training for the self-check.

    Every `HELD_OUT_EVERY`-th slice among those whose foreground covers at least 30 % of the
    largest slice foreground, starting half a period in; at least one, and at least two slices
    are left for training.

    Example:
        >>> x = np.zeros((8, 8, 20), np.float32); x[2:6, 2:6, 2:18] = 1.0
        >>> held_out_slices(x, 2).tolist()
        [5, 11, 17]
    """
    level = FOREGROUND * max(float(np.percentile(data, 99)), 1e-12)
    counts = (np.moveaxis(np.asarray(data), axis, 0) > level).reshape(data.shape[axis], -1).sum(1)
    candidates = np.flatnonzero(counts >= 0.3 * max(int(counts.max()), 1))
    if candidates.size == 0:
        candidates = np.arange(data.shape[axis])
    held = candidates[HELD_OUT_EVERY // 2::HELD_OUT_EVERY]
    if held.size == 0:
        held = candidates[len(candidates) // 2:][:1]
    return held if data.shape[axis] - held.size >= 2 else held[:0]


def _errors(base: Sequence[np.ndarray], pred: Sequence[np.ndarray], target: Sequence[np.ndarray],
            masks: Sequence[np.ndarray]) -> tuple[float, float, float, float]:
    """Sums over the masks: |B - T|^2, |S - T|^2, (S - B).(T - B), |S - B|^2."""
    eb = es = cross = ds = 0.0
    for b, s, t, m in zip(base, pred, target, masks, strict=True):
        b, s, t = (np.asarray(a, np.float64)[m] for a in (b, s, t))
        eb += float(np.sum((b - t) ** 2))
        es += float(np.sum((s - t) ** 2))
        cross += float(np.sum((s - b) * (t - b)))
        ds += float(np.sum((s - b) ** 2))
    return eb, es, cross, ds


def gain_db(base: Sequence[np.ndarray], pred: Sequence[np.ndarray], target: Sequence[np.ndarray],
            masks: Sequence[np.ndarray]) -> float:
    """PSNR gain (dB) of `pred` over `base` against `target` inside `masks` (pooled).

    Example:
        >>> t = np.ones((4, 4)); m = t > 0
        >>> round(gain_db([t + 0.2], [t + 0.1], [t], [m]), 2)
        6.02
    """
    eb, es, _, _ = _errors(base, pred, target, masks)
    return _db(eb, es)


def _db(base_error: float, error: float) -> float:
    if base_error == error:
        return 0.0
    return float(10 * np.log10(max(base_error, 1e-30) / max(error, 1e-30)))


@dataclass
class SelfCheck:
    """What the held-out slices said, and the blend weight chosen from them.

    Attributes:
        slices: Acquired slices held out of training (indices along the through-plane axis).
        gain_db: PSNR gain of the learnt result alone over B-spline on them (inside the foreground).
        weight: Weight of the learnt result in the blend (0 = B-spline, 1 = learnt result).
        blended_gain_db: Gain of the blend over B-spline on the same slices (>= 0).
        history: Held-out gain after the filters and at each CNN check, as (CNN steps, dB).
        cnn_steps: CNN training steps kept (the best-scoring check; 0 = filters only).
    """

    slices: list[int]
    gain_db: float
    weight: float
    blended_gain_db: float
    history: list[tuple[int, float]] = field(default_factory=list)
    cnn_steps: int = 0

    def sentence(self) -> str:
        """One sentence for the user: the held-out gain and what was done with it."""
        where = (f"Self-check on {len(self.slices)} held-out in-plane slice"
                 f"{'s' if len(self.slices) != 1 else ''}: the learnt super-resolution scored "
                 f"{self.gain_db:+.2f} dB PSNR against B-spline inside the foreground")
        if self.weight <= 0:
            return where + ", so the result is plain B-spline interpolation."
        if self.weight < 1:
            return (where + f", so the result blends it with B-spline (weight {self.weight:.2f} on "
                    f"the learnt part; {self.blended_gain_db:+.2f} dB there).")
        return where + "; the result is the learnt super-resolution."

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record (provenance, CLI JSON)."""
        return {"held_out_slices": [int(s) for s in self.slices], "gain_db": round(self.gain_db, 3),
                "weight": round(self.weight, 4), "blended_gain_db": round(self.blended_gain_db, 3),
                "cnn_steps": int(self.cnn_steps),
                "history_db": [[int(k), round(g, 3)] for k, g in self.history],
                "sentence": self.sentence()}


def self_check(slices: Sequence[int], base: Sequence[np.ndarray], pred: Sequence[np.ndarray],
               target: Sequence[np.ndarray], masks: Sequence[np.ndarray], *,
               history: Sequence[tuple[int, float]] = (), cnn_steps: int = 0) -> SelfCheck:
    """Score `pred` (learnt) and `base` (B-spline) against `target`; choose the blend weight.

    Example:
        >>> t = np.ones((4, 4)); m = t > 0
        >>> check = self_check([3], [t + 0.2], [t - 0.3], [t], [m])
        >>> round(check.gain_db, 2), round(check.weight, 2), check.blended_gain_db > 0
        (-3.52, 0.4, True)
    """
    eb, es, cross, ds = _errors(base, pred, target, masks)
    weight = float(np.clip(cross / ds, 0.0, 1.0)) if ds > 0 else 0.0
    blended = _db(eb, eb - 2 * weight * cross + weight**2 * ds)  # |B + w (S - B) - T|^2
    if blended < MIN_BLEND_GAIN_DB:
        weight, blended = 0.0, 0.0
    return SelfCheck([int(s) for s in slices], _db(eb, es), weight, blended,
                     [(int(k), float(g)) for k, g in history], cnn_steps)
