#!/usr/bin/env python
"""Cross-validation report for ``brats-tumor-seg``: thresholds and post-processing chosen by CV.

Reads the validation probabilities that ``scripts/train_tumor_gpu.py`` wrote per fold
(``cv_fold<k>.npz``: uint8 TC / WT / ET probabilities of each held-out case in its head box,
with all its contrasts ("full") and without T1c ("noT1c": FLAIR + T1)) and the reference labels
from ``scripts/prep_tumor_gpu.py``'s packed file. For every candidate threshold and
post-processing it computes per-case Dice, signed whole-tumour volume error and HD95 (MONAI),
and reports:

- the numbers at the recipe chosen on all five cases (what the card ships), and
- nested ("leave-one-case-out") numbers: for each case the thresholds are chosen on the other
  four, so the choice never sees the case it is scored on.

    python scripts/cv_tumor_seg.py --runs OUT --data .gpu/tumor_data.bin --json cv.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "bench")]

from train_tumor_gpu import EXPERT, load_data  # noqa: E402
from tumor_baseline import baseline_labels  # noqa: E402

from napari_brain_dl.core.models.prepost import brats_regions, tumour_components  # noqa: E402

THRESHOLDS = [round(t, 2) for t in np.arange(0.3, 0.96, 0.05)]
POSTS = {"none": None, "main": 0.1}  # keep tumour components >= this fraction of the largest


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two masks (1.0 when both are empty)."""
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * float((a & b).sum()) / s


def hd95(a: np.ndarray, b: np.ndarray) -> float:
    """95th-percentile Hausdorff distance (voxels = mm) with MONAI; nan when a mask is empty."""
    import torch
    from monai.metrics import compute_hausdorff_distance

    if not a.any() or not b.any():
        return float("nan")
    box = ndimage.find_objects((a | b).astype(np.uint8))[0]
    box = tuple(slice(max(0, s.start - 2), s.stop + 2) for s in box)
    pa = torch.from_numpy(np.ascontiguousarray(a[box]))[None, None].float()
    pb = torch.from_numpy(np.ascontiguousarray(b[box]))[None, None].float()
    return float(compute_hausdorff_distance(pa, pb, percentile=95.0))


def regions(labels: np.ndarray) -> dict[str, np.ndarray]:
    return {"WT": labels > 0, "TC": (labels == 1) | (labels == 3), "ET": labels == 3}


def labels_from(prob: np.ndarray, t: dict[str, float], post: float | None) -> np.ndarray:
    """uint8 probabilities (3 or 1 channels) -> labels 0-3 with per-region thresholds."""
    p = prob.astype(np.float32) / 255
    if p.shape[0] == 1:  # WT only (no T1c)
        lab = np.where(p[0] > t["WT"], 2, 0).astype(np.uint8)
    else:
        lab = brats_regions(p, {"TC": t["TC"], "WT": t["WT"], "ET": t["ET"]}, 3)
    return lab if post is None else tumour_components(lab, post)


def score(lab: np.ndarray, ref: np.ndarray, names: tuple[str, ...], with_hd: bool) -> dict[str, float]:
    pr, rr = regions(lab), regions(ref)
    out = {k: dice(pr[k], rr[k]) for k in names}
    out["WT_vol_err"] = (pr["WT"].sum() - rr["WT"].sum()) / max(1, rr["WT"].sum())
    if with_hd:
        out.update({f"HD95_{k}": hd95(pr[k], rr[k]) for k in names})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, required=True, help="folder holding cv_fold0..4.npz")
    ap.add_argument("--data", type=Path, required=True, help="packed data of prep_tumor_gpu.py")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    cases = load_data(args.data)
    preds: dict[str, np.ndarray] = {}
    for k in range(5):
        with np.load(args.runs / f"cv_fold{k}.npz") as z:
            preds.update({key: z[key] for key in z.files})
    refs = {n: cases[n]["labels"] for n in cases}
    # --- grid: per case, mode, threshold, post -> Dice (thresholds per region independent)
    grid: dict[tuple, float] = {}
    for key, prob in preds.items():
        name, mode = key.split("|")
        rr = regions(refs[name])
        for post_name, post in POSTS.items():
            for t in THRESHOLDS:
                lab = labels_from(prob, {"WT": t, "TC": t, "ET": t}, post)
                pr = regions(lab)
                for reg in (("WT", "TC", "ET") if mode == "full" else ("WT",)):
                    grid[(name, mode, post_name, reg, t)] = dice(pr[reg], rr[reg])
                grid[(name, mode, post_name, "vol", t)] = (pr["WT"].sum() - rr["WT"].sum()) / rr["WT"].sum()

    def best(names: list[str], mode: str, post: str, reg: str) -> float:
        def key(t: float) -> tuple[float, float]:
            return float(np.mean([grid[(n, mode, post, reg, t)] for n in names])), -abs(t - 0.5)

        return max(THRESHOLDS, key=key)

    report: dict = {"thresholds_tried": THRESHOLDS, "grid_mean": {}}
    wt_cases = [n for n in cases if cases[n]["kind"] == "wt"]
    groups = {"full": EXPERT, "noT1c": EXPERT + wt_cases}
    for mode, names in groups.items():
        for post in POSTS:
            for reg in (("WT", "TC", "ET") if mode == "full" else ("WT",)):
                report["grid_mean"][f"{mode}/{post}/{reg}"] = {
                    str(t): round(float(np.mean([grid[(n, mode, post, reg, t)] for n in names])), 4)
                    for t in THRESHOLDS}
            report["grid_mean"][f"{mode}/{post}/vol"] = {
                str(t): round(float(np.mean([grid[(n, mode, post, "vol", t)] for n in names])), 4)
                for t in THRESHOLDS}
    # --- chosen on all CV cases, and nested leave-one-out
    chosen = {}
    for post in POSTS:
        chosen[post] = {
            "full": {reg: best(EXPERT, "full", post, reg) for reg in ("WT", "TC", "ET")},
            "noT1c": {"WT": best(groups["noT1c"], "noT1c", post, "WT")},
        }
    report["chosen"] = chosen
    per_case: dict = {}
    for post, post_v in POSTS.items():
        for mode, names in groups.items():
            regs = ("WT", "TC", "ET") if mode == "full" else ("WT",)
            for n in names:
                others = [m for m in names if m != n]
                nested = {reg: best(others, mode, post, reg) for reg in regs}
                t_all = {**{"WT": .5, "TC": .5, "ET": .5}, **chosen[post][mode]}
                t_nest = {**{"WT": .5, "TC": .5, "ET": .5}, **nested}
                prob, ref = preds[f"{n}|{mode}"], refs[n]
                per_case[f"{post}|{mode}|{n}"] = {
                    "at_0.5": score(labels_from(prob, dict.fromkeys(regs, 0.5), post_v), ref, regs, False),
                    "chosen": score(labels_from(prob, t_all, post_v), ref, regs, True),
                    "nested": {**score(labels_from(prob, t_nest, post_v), ref, regs, False), "t": nested},
                }
    report["per_case"] = per_case
    # baseline (FLAIR + T1c classical) on the expert cases, same box
    base = {}
    for n in EXPERT:
        img = cases[n]["image"]
        flair = np.where(img[0] == 0, 0, img[0].astype(np.float32))
        t1c = np.where(img[1] == 0, 0, img[1].astype(np.float32))
        base[n] = score(baseline_labels(flair, t1c), refs[n], ("WT", "TC", "ET"), False)
    for n in wt_cases:
        flair = np.where(cases[n]["image"][0] == 0, 0, cases[n]["image"][0].astype(np.float32))
        base[n] = score(baseline_labels(flair, flair), refs[n], ("WT",), False)
    report["baseline"] = base
    for post in POSTS:
        print(f"== post {post}: chosen thresholds {chosen[post]}")
        for mode, names in groups.items():
            for tag in ("at_0.5", "chosen", "nested"):
                rows = [per_case[f"{post}|{mode}|{n}"][tag] for n in names]
                keys = [k for k in rows[0] if k != "t"]
                mean = {k: float(np.nanmean([r[k] for r in rows])) for k in keys}
                print(f"  {mode:6s} {tag:7s} mean " + " ".join(f"{k} {v:.3f}" for k, v in mean.items()))
    print("per case (post main, chosen):")
    for key, v in per_case.items():
        if key.startswith("main|"):
            print(f"  {key}: " + " ".join(f"{k} {x:.3f}" for k, x in v["chosen"].items())
                  + " | baseline " + " ".join(f"{k} {x:.3f}" for k, x in base[key.split('|')[2]].items()))
    report["shipped"] = shipped(preds, refs, base, groups)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float), "utf-8")
    return 0


SHIP = {"threshold": {"TC": 0.5, "WT": 0.4, "ET": 0.5}, "wt_threshold_without_t1c": 0.7, "min_component": 0.1}


def shipped(preds: dict, refs: dict, base: dict, groups: dict) -> dict:
    """Per-case table (markdown on stdout) of the card's recipe `SHIP`: Dice, volume error, HD95."""
    from napari_brain_dl.core.models.prepost import brats_labels

    out: dict = {}
    print(f"shipped recipe {SHIP}")
    print("| case | contrasts | WT | TC | ET | WT volume error | HD95 WT / TC / ET (mm) "
          "| baseline WT / TC / ET |")
    print("|---|---|---|---|---|---|---|---|")
    for mode, names in groups.items():
        regs = ("WT", "TC", "ET") if mode == "full" else ("WT",)
        for n in names:
            prob = preds[f"{n}|{mode}"].astype(np.float32) / 255
            if mode == "noT1c":
                prob = np.concatenate([np.zeros_like(prob), prob, np.zeros_like(prob)])
            lab = brats_labels(prob, SHIP, t1c=mode == "full")
            m = score(lab, refs[n], regs, True)
            out[f"{mode}|{n}"] = m
            b = base[n]
            cells = [f"{m[k]:.3f}" if k in m else "-" for k in ("WT", "TC", "ET")]
            hd = " / ".join(f"{m[f'HD95_{k}']:.1f}" for k in regs)
            bl = " / ".join(f"{b[k]:.3f}" for k in regs)
            print(f"| {n} | {'all given' if mode == 'full' else 'FLAIR (+T1), no T1c'} | " + " | ".join(cells)
                  + f" | {m['WT_vol_err']:+.1%} | {hd} | {bl} |")
        rows = [out[f"{mode}|{n}"] for n in names]
        mean = {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}
        med = float(np.median([r["WT_vol_err"] for r in rows]))
        out[f"{mode}|mean"] = {**mean, "WT_vol_err_median": med}
        dices = " | ".join(f"{mean[k]:.3f}" if k in mean else "-" for k in ("WT", "TC", "ET"))
        print(f"| **mean** ({mode}) | | {dices}"
              + f" | {mean['WT_vol_err']:+.1%} (median {med:+.1%}) | "
              + " / ".join(f"{mean[f'HD95_{k}']:.1f}" for k in regs) + " | |")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
