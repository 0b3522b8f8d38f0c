"""Benchmark: fast occlusion against MONAI's defaults and captum's brute force, one process.

Same model (tumor-present, the project's classifier), same input (the held-out case
brats_2013_pat0006_1, FLAIR + T1c, preprocessed as the card says: 2 mm, cropped to the head),
same target (the calibrated tumour probability, softmax of logits / temperature):

- **fast**: `napari_brain_dl.core.explain.occlusion` mode "fast" (patch 16, stride 8; windows
  without brain skipped, coarse grid, refinement of the most important windows, batches of 8);
- **brute (ours)**: the same windows, every one evaluated (mode "brute": captum's ``Occlusion``
  on the input up to the last full window, the rest put back by the forward function);
- **captum**: ``captum.attr.Occlusion`` called directly with the same patch, stride and zero
  baseline (it adds a partial window at each axis' end: 730 windows instead of 649 here);
- **MONAI default**: ``monai.visualize.OcclusionSensitivity(model)`` with its defaults
  (mask 16, overlap 0.6, gaussian occlusion, batches of 16, softmax).

Reported: forward passes (occluded copies evaluated), seconds, Spearman of each map with the
captum brute-force map over brain voxels.

Usage::

    python bench/bench_occlusion.py [--threads 2] [--skip-monai]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import brats_data  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from napari_brain_dl.core import io  # noqa: E402
from napari_brain_dl.core.explain import count_monai_default_passes, occlusion, prepare  # noqa: E402
from napari_brain_dl.core.inference import get_model  # noqa: E402


class Counting(torch.nn.Module):
    """Wraps a model and counts the samples it sees; returns the tumour-class logits."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module, self.samples = module, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.samples += int(x.shape[0])
        return self.module(x) / self.temperature

    temperature = 1.0


class Probabilities(torch.nn.Module):
    """Softmax of the wrapped model's output (captum explains what forward returns)."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.module(x), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-monai", action="store_true", help="count MONAI's passes, do not run them")
    parser.add_argument("--patch", type=int, default=16)
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    case = brats_data.DATA / "brats2015_flair_t1c" / brats_data.VALIDATION[0]
    flair = io.load(case / "Flair_subtrMeanDivStd.nii.gz")
    t1c = io.load(case / "T1c_subtrMeanDivStd.nii.gz")
    loaded = get_model("tumor-present", "cpu")
    frame = prepare(loaded.card, [flair, t1c])
    x = frame.tensor()
    brain = frame.brain
    net = Counting(loaded.module).eval()
    net.temperature = float(loaded.card.output.get("temperature", 1.0))
    print(f"input {tuple(x.shape[2:])} at 2 mm, {int(brain.sum())} brain voxels, threads {args.threads}")

    def score(b: torch.Tensor) -> torch.Tensor:
        return torch.softmax(net(b), 1)[:, 1]

    rows: dict[str, dict] = {}
    maps: dict[str, np.ndarray] = {}
    for mode in ("fast", "brute"):
        net.samples = 0
        t = time.perf_counter()
        occ = occlusion(score, x, patch=args.patch, stride=args.stride, mode=mode)
        maps[mode] = occ.map
        rows[f"{mode} (ours)"] = {"passes": net.samples, "seconds": time.perf_counter() - t}

    from captum.attr import Occlusion

    net.samples = 0
    t = time.perf_counter()
    c = x.shape[1]
    with torch.no_grad():
        att = Occlusion(Probabilities(net)).attribute(
            x,
            sliding_window_shapes=(c, args.patch, args.patch, args.patch),
            strides=(c, args.stride, args.stride, args.stride),
            target=1,
            baselines=0.0,
            perturbations_per_eval=8,
        )
    maps["captum"] = att[0].sum(0).numpy() / c
    rows["captum Occlusion (brute)"] = {"passes": net.samples, "seconds": time.perf_counter() - t}

    monai_passes = count_monai_default_passes(tuple(x.shape[2:]))
    if args.skip_monai:
        rows["MONAI OcclusionSensitivity defaults"] = {"passes": monai_passes, "seconds": None}
    else:
        from monai.visualize import OcclusionSensitivity

        net.samples = 0
        t = time.perf_counter()
        with torch.no_grad():
            occ_map, _ = OcclusionSensitivity(net, verbose=False)(x)
        base = float(torch.softmax(loaded.module(x) / net.temperature, 1)[0, 1])
        maps["monai"] = base - occ_map[0, 1].numpy()  # (B, classes, ...) in MONAI 1.6
        rows["MONAI OcclusionSensitivity defaults"] = {
            "passes": net.samples,
            "seconds": time.perf_counter() - t,
        }

    ref = maps["captum"]
    for name, key in (
        ("fast (ours)", "fast"),
        ("brute (ours)", "brute"),
        ("captum Occlusion (brute)", "captum"),
        ("MONAI OcclusionSensitivity defaults", "monai"),
    ):
        if key in maps:
            rows[name]["spearman_vs_captum"] = float(spearmanr(maps[key][brain], ref[brain])[0])
    fast = rows["fast (ours)"]["passes"]
    print(f"{'method':<38} {'passes':>7} {'seconds':>8} {'Spearman':>9}")
    for name, row in rows.items():
        sec = f"{row['seconds']:.1f}" if row["seconds"] is not None else "-"
        rho = f"{row['spearman_vs_captum']:.3f}" if "spearman_vs_captum" in row else "-"
        print(f"{name:<38} {row['passes']:>7} {sec:>8} {rho:>9}")
    print(
        f"fast uses {monai_passes / fast:.1f}x fewer forward passes than MONAI's defaults "
        f"({monai_passes}) and {rows['captum Occlusion (brute)']['passes'] / fast:.1f}x fewer than "
        "brute force"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"input_shape": list(x.shape[2:]), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
