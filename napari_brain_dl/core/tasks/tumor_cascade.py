"""The whole tumour re-outlined by the click model from one automatic click (issue #20).

The automatic model finds the tumour; one positive click at the innermost voxel of its
largest whole-tumour component goes to the click model (`ClickSegmenter.logits`), and the
click model's outline replaces that component's inside the click model's window. Core and
enhancing labels stay where the new whole tumour keeps them, new whole-tumour voxels are
oedema (label 2), and other tumour components are left as the automatic model drew them.
The click model outlines the whole tumour more tightly than the automatic model on expert
exams it never saw (cross-validation: scripts/cv_click_cascade.py, bench/README.md).

When the two outlines disagree (Dice under `MIN_AGREEMENT` between the click model's outline
and the component it replaces, e.g. an empty answer), the automatic outline is kept and the
result says so: on one cross-validation exam the click model found nothing at the seed.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..models.prepost import largest_component
from ..progress import CancelToken, check
from ..volume import Volume

CLICK_MODEL = "brats-tumor-click"
MIN_AGREEMENT = 0.5  # Dice between the two outlines below which the automatic one is kept


def refine_whole_tumour(
    labels: np.ndarray,
    flair: Volume,
    t1c: Volume,
    probabilities: np.ndarray | None = None,
    wt_threshold: float = 0.5,
    *,
    model: str = CLICK_MODEL,
    device: str = "auto",
    segmenter: Any = None,
    cancel: CancelToken | None = None,
) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Re-outline the largest tumour component with one click of the click model at its centre.

    Args:
        labels: Automatic BraTS labels (0-3) on FLAIR's grid.
        flair, t1c: The exam's FLAIR and T1c on that grid.
        probabilities: (3, X, Y, Z) TC / WT / ET probabilities behind `labels`, or None. The
            whole-tumour channel takes the click model's answer (logit 0 at `wt_threshold`) where
            it gave one, so tighter / looser steps move the new outline by about a voxel layer.
        wt_threshold: The whole-tumour threshold the labels were made with.
        model: Click model id or card. segmenter: a `ClickSegmenter` of this exam to reuse.

    Returns:
        (labels, probabilities, info): new arrays (the inputs are not changed) and what was
        done, for the provenance. Empty labels, or outlines that disagree, come back unchanged
        with ``applied`` False and the reason.
    """
    from .click_segment import NO_ANSWER, ClickSegmenter
    from .tumor_edit import logit_to_probability
    from .tumor_prompts import innermost_voxel

    wt = np.asarray(labels) > 0
    largest = largest_component(wt)
    if not largest.any():
        return labels, probabilities, {"applied": False, "reason": "no tumour to re-outline"}
    seed = innermost_voxel(largest, tuple(float(s) for s in flair.spacing))
    start = time.perf_counter()
    seg = segmenter or ClickSegmenter(flair, t1c, model=model, device=device)
    check(cancel)
    box, logit = seg.logits([seed], [], cancel=cancel)
    # everything below is on the click model's window: beyond it nothing changes
    wt_box = wt[box]
    region = ~(wt_box & ~largest[box])  # where its outline holds: the window, other lesions out
    new = logit > 0
    click_model = {"model_id": seg.loaded.card.id, "weights_sha256": seg.loaded.sha256}
    before = region & wt_box
    agreement = 2 * float((new & before).sum()) / max(float(new.sum() + before.sum()), 1.0)
    if agreement < MIN_AGREEMENT:
        reason = (f"the click model's outline disagrees with the automatic one (Dice {agreement:.2f} < "
                  f"{MIN_AGREEMENT}): the automatic whole tumour is kept; review it")
        return labels, probabilities, {"applied": False, "reason": reason, "click_model": click_model,
                                       "seed_voxel": list(seed), "agreement": round(agreement, 3)}
    out = np.array(labels, dtype=np.uint8, copy=True)
    removed = before & ~new
    added = region & new & ~wt_box
    out[box][removed] = 0
    out[box][added] = 2
    prob = None
    if probabilities is not None:
        prob = np.array(probabilities, copy=True)
        p = prob[(1, *box)]
        answered = region & (logit != NO_ANSWER)
        p[answered] = logit_to_probability(logit[answered], wt_threshold).astype(p.dtype)
        # Removed voxels where the click model gave no answer keep their order, just under the threshold.
        # (Its no-answer logit maps to one value just under it: a looser step would take all of them.)
        dropped = removed & ~answered
        p[dropped] = (p[dropped].astype(np.float32) * (0.99 * wt_threshold)).astype(p.dtype)
    info = {
        "applied": True,
        "click_model": click_model,
        "seed_voxel": list(seed),
        "agreement": round(agreement, 3),
        "voxels_added": int(added.sum()),
        "voxels_removed": int(removed.sum()),
        "seconds": round(time.perf_counter() - start, 2),
    }
    return out, prob, info
