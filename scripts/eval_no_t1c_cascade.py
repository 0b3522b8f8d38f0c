"""The whole tumour re-outlined without T1c: FLAIR + T1 exams, T1 standing in for the click model's T1c.

The click model never trained on the seven whole-tumour-only exams (brats18_flair_t1_wt); tcia05_396
goes through a click-model fold that never saw it (``--fold-a CARD``). The no-T1c network's own result
is cached in ``--cache``. Prints and writes WT Dice and volume error before and after (bench/README.md).

Usage::

    python scripts/eval_no_t1c_cascade.py --fold-a FOLD_A/brats-tumor-click.yaml \
        --json bench/tumor_cascade_no_t1c.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from napari_brain_dl.core import io  # noqa: E402
from napari_brain_dl.core.tasks.tumor import segment_tumor  # noqa: E402
from napari_brain_dl.core.tasks.tumor_cascade import refine_whole_tumour  # noqa: E402


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--fold-a", required=True, help="click-model card that never saw brats18_tcia05_396_1")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/no_t1c_auto"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    args.cache.mkdir(parents=True, exist_ok=True)
    wt_only = args.data / "brats18_flair_t1_wt"
    cases = [(f"case_{k}", wt_only / f"case_{k}", "whole_tumor.nii.gz", "brats-tumor-click")
             for k in range(7)]
    cases.append(("tcia05_396", args.data / "brats_more" / "brats18_tcia05_396_1", "seg.nii.gz", args.fold_a))
    out = {}
    for name, folder, label_file, click_model in cases:
        flair, t1 = io.load(folder / "flair.nii.gz"), io.load(folder / "t1.nii.gz")
        truth = np.asarray(io.load(folder / label_file).data) > 0
        cache = args.cache / f"{name}.npz"
        if not cache.exists():
            seg = segment_tumor(flair, None, t1, device="cpu", click_refine=False)
            np.savez_compressed(cache, labels=np.asarray(seg.labels.data), prob=seg.probabilities,
                                thr=seg.provenance["thresholds"]["WT"])
        z = np.load(cache)
        labels, thr = z["labels"], float(z["thr"])
        new, _, info = refine_whole_tumour(labels, flair, t1, z["prob"], thr, model=click_model, device="cpu")
        row: dict[str, object] = {}
        for key, mask in (("automatic", labels > 0), ("cascade", new > 0)):
            row[key] = round(dice(mask, truth), 3)
            row[f"{key}_vol_err"] = round(float(mask.sum() / truth.sum() - 1), 3)
        row.update(applied=info["applied"], agreement=info.get("agreement"))
        out[name] = row
        print(name, row, flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
