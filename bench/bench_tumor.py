"""Benchmark: tumour models against the classical baseline and against plain MONAI, one process.

1. Accuracy per case (WT / TC / ET Dice, WT volume error): the shipped recipe's 5-fold
   cross-validation (bench/tumor_cv.json, from scripts/cv_tumor_seg.py) beside the classical
   baseline (bench/tumor_baseline.py); with all contrasts and with FLAIR (+T1) without T1c.
2. Speed: full-volume segmentation through the engine (`segment_tumor`, model cached) vs the
   same network through plain MONAI ``sliding_window_inference`` at the card's window settings
   on the whole normalised volume (NCDHW, float32, ``torch.no_grad``), as a time ratio.
3. Click latency: the click model through `ClickSegmenter.update`, clicks simulated as in the
   issue (innermost voxel of the tumour, then of the largest error region), median and p95.

Usage::

    python bench/bench_tumor.py [--data ../shared/data] [--repeats 2] [--clicks 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "bench")]

import brats_data  # noqa: E402

from napari_brain_dl.core import io  # noqa: E402
from napari_brain_dl.core.inference import get_model  # noqa: E402
from napari_brain_dl.core.models import prepost  # noqa: E402
from napari_brain_dl.core.tasks.tumor import segment_tumor  # noqa: E402
from napari_brain_dl.core.volume import Volume  # noqa: E402

CASES = [*brats_data.EXPERT, "brats_gli_00001"]


def load_exam(data: Path, name: str) -> tuple[Volume, Volume, np.ndarray]:
    """FLAIR, T1c Volumes and the reference labels (BraTS 2023 values) of one case."""
    if name.startswith("brats_2013"):
        folder = data / "brats2015_flair_t1c" / name
        flair, t1c = (
            io.load(folder / "Flair_subtrMeanDivStd.nii.gz"),
            io.load(folder / "T1c_subtrMeanDivStd.nii.gz"),
        )
        raw = np.rint(np.asarray(io.load(folder / "OTMultiClass.nii.gz").data)).astype(np.int64)
        ref = np.array([0, 1, 2, 1, 3], np.uint8)[raw]
    else:
        folder = data / name
        flair, t1c = io.load(folder / "t2f.nii.gz"), io.load(folder / "t1c.nii.gz")
        ref = np.asarray(io.load(folder / "seg-BraTS23_1.nii.gz").data).astype(np.uint8)
    return flair, t1c, ref


def accuracy(cv_json: Path) -> dict[str, object]:
    """Per-case 5-fold cross-validation of the shipped recipe, beside the classical baseline.

    The shipped network trained on every labelled exam in ../shared/data, so it is scored only
    through its cross-validation: each expert case by the fold network that never saw it
    (``scripts/train_tumor_gpu.py`` wrote their probabilities, ``scripts/cv_tumor_seg.py --json``
    scored them at the card's thresholds). This prints that table from the JSON.
    """
    report = json.loads(cv_json.read_text())
    rows, base = report["shipped"], report["baseline"]
    print(f"cross-validation ({report['source']}); recipe {report['recipe']}")
    for key, m in rows.items():
        mode, name = key.split("|")
        regs = [k for k in ("WT", "TC", "ET") if k in m]
        dice = " ".join(f"{k} {m[k]:.3f}" for k in regs)
        line = f"{name:22s} {mode:6s} {dice:28s} WT volume {m['WT_vol_err']:+.1%}"
        if name in base:
            line += " | baseline " + " ".join(f"{k} {base[name][k]:.3f}" for k in regs)
        print(line, flush=True)
    return report


def speed(data: Path, model: str, repeats: int) -> dict[str, float]:
    """Engine vs plain MONAI sliding window on the held-out case (FLAIR + T1c, T1/T2 zero)."""
    from monai.inferers import sliding_window_inference

    flair, t1c, _ = load_exam(data, brats_data.VALIDATION[0])
    loaded = get_model(model, "cpu")
    card = loaded.card
    segment_tumor(flair, t1c, model=model, device="cpu")  # warm-up, models cached
    engine, cascade = [], []
    for _ in range(repeats):  # the network alone, then as `segment` runs it (whole tumour re-outlined)
        start = time.perf_counter()
        segment_tumor(flair, t1c, model=model, device="cpu", click_refine=False)
        engine.append(time.perf_counter() - start)
        start = time.perf_counter()
        segment_tumor(flair, t1c, model=model, device="cpu")
        cascade.append(time.perf_counter() - start)

    settings = card.inference
    roi = settings.get("roi_size") or [-(-n // 16) * 16 for n in flair.shape]  # whole volume, like the bundle
    overlap = float(settings.get("overlap", 0.5))
    module = loaded.module.to(memory_format=torch.contiguous_format)
    plain = []
    for _ in range(repeats):
        start = time.perf_counter()
        x = np.stack(
            [prepost.zscore_foreground(np.asarray(v.data)) for v in (flair, t1c)]
            + [np.zeros(flair.shape, np.float32)] * 2
        )
        with torch.no_grad():
            y = sliding_window_inference(
                torch.from_numpy(x)[None], roi, 1, module, overlap=overlap, mode="gaussian"
            )
        prepost.brats_regions(prepost.sigmoid(y[0].numpy()), 0.5, 3)
        plain.append(time.perf_counter() - start)
    result = {"engine_s": min(engine), "engine_with_click_refine_s": min(cascade),
              "plain_monai_s": min(plain), "roi": list(roi), "overlap": overlap}
    plain_s = result["plain_monai_s"]
    result["ratio"] = result["engine_s"] / plain_s
    result["ratio_with_click_refine"] = result["engine_with_click_refine_s"] / plain_s
    print(
        f"full volume: engine {result['engine_s']:.1f} s "
        f"({result['engine_with_click_refine_s']:.1f} s with the click-model outline), plain MONAI sliding "
        f"window (roi {roi}, overlap {overlap}) {plain_s:.1f} s, "
        f"ratio {result['ratio']:.2f} ({result['ratio_with_click_refine']:.2f})",
        flush=True,
    )
    return result


def click_latency(data: Path, clicks: int) -> dict[str, float]:
    from napari_brain_dl.core.tasks.click_segment import ClickSegmenter, next_click

    times, per_case = [], {}
    for name in CASES:
        flair, t1c, ref = load_exam(data, name)
        truth = ref > 0
        session = ClickSegmenter(flair, t1c, device="cpu")
        fg, bg, dices = [], [], []
        mask = np.zeros(truth.shape, bool)
        for _ in range(clicks):
            index, positive = next_click(mask, truth)
            (fg if positive else bg).append(tuple(int(i) for i in index))
            start = time.perf_counter()
            mask = session.update(fg, bg).data > 0
            times.append(time.perf_counter() - start)
            dices.append(brats_data.dice(mask, truth))
        per_case[name] = dices
        print(f"{name:24s} click Dice " + " ".join(f"{d:.3f}" for d in dices), flush=True)
    result = {"median_s": statistics.median(times), "p95_s": float(np.percentile(times, 95)), "n": len(times)}
    print(
        f"click latency: median {result['median_s']:.2f} s, p95 {result['p95_s']:.2f} s, {len(times)} clicks"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=brats_data.DATA)
    parser.add_argument("--model", default="brats-tumor-seg")
    parser.add_argument("--cv", type=Path, default=ROOT / "bench" / "tumor_cv.json",
                        help="scripts/cv_tumor_seg.py --json output (default: the shipped model's)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--clicks", type=int, default=5)
    parser.add_argument("--skip", nargs="*", default=[], choices=["accuracy", "speed", "clicks"])
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if "accuracy" not in args.skip:
        accuracy(args.cv)
    if "speed" not in args.skip:
        speed(args.data, args.model, args.repeats)
    if "clicks" not in args.skip:
        click_latency(args.data, args.clicks)


if __name__ == "__main__":
    main()
