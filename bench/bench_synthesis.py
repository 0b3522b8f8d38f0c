"""Benchmark: contrast synthesis models against histogram matching, on held-out data, one process.

Per held-out case (FLAIR from T1c: brats_2013_pat0006_1; T2 from T1: the superior slab of
brats_gli_00001, a within-subject split): PSNR, SSIM and MAE inside the brain
(`napari_brain_dl.core.image_metrics.image_scores`, match=True: the issue's definition) and
seconds for

- the shipped model through `synthesize` (the real path: card, predict, masking, marking);
- histogram matching onto the reference target distribution stored in the card (what a user
  without the target gets: ``--model histogram``);
- histogram matching onto the real target's own histogram ("oracle": needs the answer).

Seconds cover the method only, not the scoring. The model must beat the stronger histogram
baseline by >= 3 dB PSNR (and on SSIM); the script exits 1 when it does not.

Usage::

    python bench/bench_synthesis.py [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import train_synthesis as ts  # noqa: E402

from napari_brain_dl.core.resources import resources_dir  # noqa: E402

METHODS = ("model", "histogram_reference", "histogram_oracle")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows, ok = {}, True
    for pair, spec in ts.PAIRS.items():
        card = resources_dir() / "models" / f"{spec['id']}.yaml"
        res = ts.evaluate(pair, card)
        rows[pair] = res
        best = max(res["histogram_reference"]["psnr"], res["histogram_oracle"]["psnr"])
        best_ssim = max(res["histogram_reference"]["ssim"], res["histogram_oracle"]["ssim"])
        res["gain_db"] = round(res["model"]["psnr"] - best, 2)
        ok &= res["gain_db"] >= 3.0 and res["model"]["ssim"] > best_ssim
    print("\n| pair | held-out case | method | PSNR dB | SSIM | MAE | seconds |")
    print("|---|---|---|---|---|---|---|")
    for pair, res in rows.items():
        for m in METHODS:
            r = res[m]
            print(f"| {pair} | {res['case']} | {m} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['mae']:.3f} "
                  f"| {r['seconds']:.1f} |")
    for pair, res in rows.items():
        print(f"{pair}: model - best histogram = {res['gain_db']:+.2f} dB")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
