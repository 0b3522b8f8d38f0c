"""Issue #20 experiment: is the whole tumour better outlined by the click model, seeded automatically?

For each expert exam, `tumor_cascade.refine_whole_tumour` (what `segment` does) re-outlines
the largest tumour component of a start with one click of the click model's fold that never
saw the exam, at the component's innermost voxel; WT / TC / ET Dice and the whole-tumour
volume error are scored against the expert's labels, before and after. Starts:
- ``automatic``: the shipped FLAIR + T1c model without the re-outlining (`segment_tumor`,
  click_refine=False; it trained on brats_2013 pat0003/4/5, so for those exams it saw their labels),
- ``baseline``: the classical FLAIR threshold (bench/tumor_baseline.py; no training at all).

    python scripts/cv_click_cascade.py --fold /tmp/click-retrain/foldA_card/brats-tumor-click.yaml \\
        brats_2013_pat0006_1 brats18_tcia05_396_1 --out /tmp/cascade_A.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "scripts")]


def wt_scores(pred: np.ndarray, truth: np.ndarray, voxel_ml: float) -> dict[str, float]:
    """Whole-tumour Dice and signed volume error (fraction of the expert's volume)."""
    inter = float((pred & truth).sum())
    return {
        "dice": round(2 * inter / max(float(pred.sum() + truth.sum()), 1.0), 4),
        "volume_error": round(float(pred.sum() - truth.sum()) / max(float(truth.sum()), 1.0), 4),
        "ml": round(float(pred.sum()) * voxel_ml, 1),
    }


def evaluate(card: str, name: str, cache: Path) -> dict[str, Any]:
    """Scores of one exam: the automatic and baseline labels, each re-outlined by `refine_whole_tumour`
    (the product's function) with the click model of `card`."""
    from bench_interact import automatic, load_case, scores
    from tumor_baseline import baseline_labels

    from napari_brain_dl.core.tasks.click_segment import ClickSegmenter
    from napari_brain_dl.core.tasks.tumor_cascade import refine_whole_tumour

    vols, ref = load_case(ROOT.parent / "shared" / "data", name)
    truth = ref > 0
    flair, t1c = vols[0], vols[1]
    ml = flair.voxel_volume_ml
    auto_labels, _ = automatic(vols, name, cache)
    starts = {"automatic": np.asarray(auto_labels),
              "baseline": baseline_labels(np.asarray(flair.data), np.asarray(t1c.data))}
    out: dict[str, Any] = {"expert_ml": round(float(truth.sum()) * ml, 1)}
    seg = ClickSegmenter(flair, t1c, model=card, device="cpu", threads=1)
    for start, labels in starts.items():
        out[start] = {**wt_scores(labels > 0, truth, ml), "regions": scores(labels, ref)}
        refined, _, info = refine_whole_tumour(labels, flair, t1c, segmenter=seg)
        out[f"click_from_{start}"] = {**wt_scores(refined > 0, truth, ml), "regions": scores(refined, ref),
                                      "seed_in_tumour": bool(truth[tuple(info["seed_voxel"])]),
                                      "applied": info["applied"], "agreement": info["agreement"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fold", nargs="+", action="append", required=True, metavar=("CARD", "EXAM"),
                    help="a click-model card and the expert exams it never saw (repeat per fold)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/bench_interact_auto"),
                    help="automatic results cached here (outside the repository)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    report: dict[str, Any] = {}
    for card, *exams in args.fold:
        for name in exams:
            report[name] = {"click_model": card, **evaluate(card, name, args.cache)}
            print(name, json.dumps(report[name]), flush=True)
    rows = list(report.values())
    for key in ("automatic", "baseline", "click_from_automatic", "click_from_baseline"):
        report.setdefault("mean", {})[key] = {
            "WT": round(float(np.mean([r[key]["dice"] for r in rows])), 4),
            "abs_volume_error": round(float(np.mean([abs(r[key]["volume_error"]) for r in rows])), 4),
            **{k: round(float(np.mean([r[key]["regions"][k] for r in rows])), 4) for k in ("TC", "ET")},
        }
    print("mean WT Dice:", report["mean"], flush=True)
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
