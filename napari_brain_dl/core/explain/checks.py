"""Reliability checks computed with every heatmap: a number, pass / warn / fail, one sentence.

1. `randomisation` (Adebayo et al. 2018): re-initialise the weights from the output layer
   downward (cascading), recompute the map, compare with the original by Spearman rank
   correlation of |map| and SSIM. Baselines: the similarity between the maps of two
   independently randomised models (what any map of this method shares for this input,
   whatever the weights), and the target scores of randomised models (a model whose score
   is typical of random weights has learned nothing for the map to show).
2. `deletion_insertion` (Petsiuk et al. 2018): remove (insert) voxels in order of decreasing
   saliency, follow the class probability, compare the areas under the curves with a random
   order.
3. `localisation`: share of the positive heatmap energy inside a reference mask, against the
   mask's share of the brain.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from ..image_metrics import ssim_map
from ..progress import CancelToken, check

MapFn = Callable[[nn.Module], np.ndarray]  # model -> heatmap on the model grid
ProbFn = Callable[[torch.Tensor], torch.Tensor]  # (B, C, ...) -> (B,) probability of the target


@dataclass
class CheckResult:
    """One check: its headline number, verdict (pass | warn | fail), a sentence, details."""

    name: str
    value: float
    verdict: str
    sentence: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def similarity(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> tuple[float, float]:
    """(Spearman of |a| vs |b| over voxels `where`, SSIM of |a| vs |b| each scaled to [0, 1])."""
    aa, bb = np.abs(a), np.abs(b)
    rho = spearmanr(aa[where], bb[where])[0]
    rho = 0.0 if not np.isfinite(rho) else float(rho)
    return rho, ssim3d(aa / (aa.max() or 1.0), bb / (bb.max() or 1.0))


def ssim3d(a: np.ndarray, b: np.ndarray, size: int = 7, data_range: float = 1.0) -> float:
    """Mean structural similarity of two 3D arrays over every voxel (uniform `size`^3 window)."""
    return float(ssim_map(a, b, data_range, sigma=None, size=size).mean())


def cascade_groups(module: nn.Module, max_steps: int = 5) -> list[list[nn.Module]]:
    """Parameterised leaf modules, output side first, grouped into at most `max_steps` steps."""
    leaves = [
        m for m in module.modules() if not list(m.children()) and any(True for _ in m.parameters(False))
    ]
    leaves.reverse()
    if not leaves:
        return []
    groups: list[list[nn.Module]] = [[leaves[0]]]  # the output layer alone first
    rest = leaves[1:]
    n = max(1, min(max_steps - 1, len(rest)))
    for chunk in np.array_split(np.arange(len(rest)), n):
        if len(chunk):
            groups.append([rest[i] for i in chunk])
    return groups


def _reinit(modules: list[nn.Module], seed: int) -> None:
    gen = torch.random.fork_rng(devices=[])
    with gen:
        torch.manual_seed(seed)
        for m in modules:
            if hasattr(m, "reset_running_stats"):
                m.reset_running_stats()  # type: ignore[operator]
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()  # type: ignore[operator]
            else:
                for p in m.parameters(False):
                    nn.init.normal_(p, std=0.02)


def randomisation(
    module: nn.Module,
    map_fn: MapFn,
    original: np.ndarray,
    where: np.ndarray,
    score_fn: Callable[[nn.Module], float],
    *,
    max_steps: int = 5,
    draws: int = 6,
    seed: int = 1234,
    cancel: CancelToken | None = None,
) -> CheckResult:
    """Cascading model-parameter randomisation against randomisation baselines.

    Two questions, both needed for a pass: does the map change when the weights are
    randomised (Spearman of |map| after full randomisation, against the similarity of two
    randomised maps), and does the model hold anything learned for the map to show (its
    target score against the scores of `draws` randomly re-initialised copies: a model with
    random weights is a typical member of that distribution).
    """
    if isinstance(module, torch.jit.ScriptModule):
        return CheckResult(
            "randomisation",
            float("nan"),
            "warn",
            "Not run: TorchScript weights cannot be re-initialised here.",
        )
    model = copy.deepcopy(module)
    steps = []
    randomised = original
    for i, group in enumerate(cascade_groups(model, max_steps)):
        check(cancel)
        _reinit(group, seed + i)
        randomised = map_fn(model)
        rho, ssim = similarity(original, randomised, where)
        steps.append({"randomised_to": i + 1, "spearman": round(rho, 4), "ssim": round(ssim, 4)})
    other = copy.deepcopy(module)
    _reinit([m for g in cascade_groups(other, max_steps) for m in g], seed + 1000)
    base_rho, base_ssim = similarity(randomised, map_fn(other), where)
    scores = [score_fn(model), score_fn(other)]
    for d in range(max(0, draws - 2)):
        check(cancel)
        _reinit([m for g in cascade_groups(other, max_steps) for m in g], seed + 2000 + d)
        scores.append(score_fn(other))
    own = score_fn(module)
    spread = float(np.std(scores)) + 1e-3 * (abs(float(np.mean(scores))) + 1.0)
    z = abs(own - float(np.mean(scores))) / spread
    final = float(steps[-1]["spearman"]) if steps else 1.0
    changed = final <= max(base_rho, 0.0) + 0.2 and final < 0.5
    verdict = "pass" if changed and z >= 4 else "fail" if (not changed and final >= 0.7) or z < 2 else "warn"
    if verdict == "pass":
        sentence = (
            f"The map changes when the weights are randomised (Spearman {final:.2f}, randomised maps "
            f"{base_rho:.2f} to each other) and the model's score is far from random networks' "
            f"(z = {z:.0f}): the map shows what the model learned."
        )
    elif z < 2:
        sentence = (
            f"The model's score is no different from randomly initialised networks' (z = {z:.1f}): "
            "its weights hold nothing learned for this input, so the map cannot show it."
        )
    elif not changed and final >= 0.7:
        sentence = (
            f"Randomising the weights hardly changes the map (Spearman {final:.2f}): it shows the "
            "input's structure, not what the model learned."
        )
    else:
        sentence = (
            f"Randomising the weights changes the map only partly (Spearman {final:.2f} against "
            f"{base_rho:.2f} between randomised maps; score z = {z:.1f}); treat it with care."
        )
    return CheckResult(
        "randomisation",
        round(final, 4),
        verdict,
        sentence,
        {
            "spearman_fully_randomised": round(final, 4),
            "ssim_fully_randomised": steps[-1]["ssim"] if steps else 1.0,
            "baseline_spearman": round(base_rho, 4),
            "baseline_ssim": round(base_ssim, 4),
            "score": round(own, 4),
            "randomised_scores": [round(v, 4) for v in scores],
            "score_z": round(z, 2),
            "cascade": steps,
        },
    )


def deletion_insertion(
    prob: ProbFn,
    x: torch.Tensor,
    saliency: np.ndarray,
    where: np.ndarray,
    *,
    steps: int = 12,
    baseline: float = 0.0,
    batch: int = 8,
    seed: int = 0,
    report: Callable[[int], None] | None = None,
    cancel: CancelToken | None = None,
) -> CheckResult:
    """Deletion / insertion AUCs for the saliency order and a random order (voxels in `where`)."""
    idx = np.flatnonzero(where.ravel())
    order = idx[np.argsort(-saliency.ravel()[idx], kind="stable")]
    rand = np.random.default_rng(seed).permutation(idx)
    fractions = np.linspace(0, 1, steps + 1)
    curves: dict[str, list[float]] = {}
    for name, ranking in (("saliency", order), ("random", rand)):
        for kind in ("deletion", "insertion"):
            check(cancel)
            curves[f"{kind}_{name}"] = _curve(prob, x, ranking, fractions, kind, baseline, batch, report)
    auc = {k: float(np.trapezoid(v, fractions)) for k, v in curves.items()}
    gain = (auc["deletion_random"] - auc["deletion_saliency"]) + (
        auc["insertion_saliency"] - auc["insertion_random"]
    )
    verdict = "pass" if gain >= 0.2 else "warn" if gain >= 0.05 else "fail"
    sentence = {
        "pass": "Removing the hottest voxels first lowers the probability, and inserting them first "
        "raises it, "
        "clearly faster than a random order: the map points at what the model uses.",
        "warn": "The map beats a random order only slightly at removing or restoring the prediction.",
        "fail": "The map does no better than a random order at removing or restoring the prediction.",
    }[verdict]
    return CheckResult(
        "deletion_insertion",
        round(gain, 4),
        verdict,
        sentence,
        {
            "auc": {k: round(v, 4) for k, v in auc.items()},
            "fractions": fractions.round(4).tolist(),
            "curves": {k: [round(p, 4) for p in v] for k, v in curves.items()},
        },
    )


def _curve(prob, x, ranking, fractions, kind, baseline, batch, report) -> list[float]:  # type: ignore[no-untyped-def]
    n = len(ranking)
    flat_shape = (x.shape[1], -1)
    out: list[float] = []
    for i in range(0, len(fractions), batch):
        chunk = fractions[i : i + batch]
        xs = x.repeat(len(chunk), *([1] * (x.ndim - 1)))
        for b, f in enumerate(chunk):
            top = torch.from_numpy(ranking[: round(f * n)])
            view = xs[b].reshape(flat_shape)
            if kind == "deletion":
                view[:, top] = baseline
            else:
                kept = view[:, top].clone()
                view[:] = baseline
                view[:, top] = kept
        with torch.no_grad():
            out.extend(float(p) for p in prob(xs).cpu())
        if report is not None:
            report(len(chunk))
    return out


def localisation(heatmap: np.ndarray, mask: np.ndarray, brain: np.ndarray) -> CheckResult:
    """Share of positive heatmap energy inside `mask` vs the mask's share of the brain (scan grid)."""
    pos = np.clip(heatmap, 0, None)
    total = float(pos.sum())
    mask = mask.astype(bool)
    share = float(pos[mask].sum() / total) if total > 0 else 0.0
    mask_share = float((mask & brain).sum() / max(1, brain.sum()))
    verdict = "pass" if share >= 0.5 else "warn" if share >= 2 * mask_share else "fail"
    sentence = {
        "pass": f"{share:.0%} of the positive heatmap lies inside the reference mask "
        f"({mask_share:.0%} of the brain): it points at the expected region.",
        "warn": f"Only {share:.0%} of the positive heatmap lies inside the reference mask, though more "
        f"than its {mask_share:.0%} share of the brain.",
        "fail": f"{share:.0%} of the positive heatmap lies inside the reference mask, no more than its "
        f"{mask_share:.0%} share of the brain: it does not point at that region.",
    }[verdict]
    return CheckResult(
        "localisation",
        round(share, 4),
        verdict,
        sentence,
        {
            "energy_inside": round(share, 4),
            "mask_share_of_brain": round(mask_share, 4),
            "enrichment": round(share / mask_share, 3) if mask_share else None,
        },
    )
