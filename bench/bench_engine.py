"""Benchmark: mindgrab through the engine vs plain eager PyTorch, in one process.

Plain eager = the brainchop MeshNet as torch modules (Conv3d, GroupNorm, GELU),
NCDHW, float32, the whole 256^3 conformed volume, ``torch.no_grad``, argmax.
Engine = ``napari_brain_dl.core.inference.predict`` end to end (preprocessing,
head crop, channels-last 3D, fused norm, inference mode, postprocessing,
geometry restore), with the model already loaded (it is cached in real use).

Usage::

    python bench/bench_engine.py [--data /work/shared/data] [--skip-eager]

Prints time ratios, Dice, and achieved GFLOP/s against an FP32 peak estimated
from lscpu (cores x GHz x FLOP/cycle, FLOP/cycle from the SIMD flags: 32 with
AVX2+FMA (two 256-bit FMA pipes), 64 with AVX-512, 16 with AVX, 8 with SSE).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from napari_brain_dl.core import io  # noqa: E402
from napari_brain_dl.core.image_metrics import dice  # noqa: E402
from napari_brain_dl.core.inference import clear_cache, get_model, predict  # noqa: E402
from napari_brain_dl.core.models.loaders import read_state_dict  # noqa: E402
from napari_brain_dl.core.models.prepost import fill_holes, largest_component  # noqa: E402


def cpu_peak_gflops() -> tuple[float, str]:
    """FP32 peak estimate and how it was derived."""
    text = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    flags = set(re.search(r"Flags:\s*(.*)", text).group(1).split()) if "Flags:" in text else set()
    cores = len(os.sched_getaffinity(0))
    mhz = None
    for pattern in (r"CPU max MHz:\s*([\d.]+)", r"CPU MHz:\s*([\d.]+)"):
        m = re.search(pattern, text)
        if m:
            mhz = float(m.group(1))
            break
    how = "lscpu MHz"
    if mhz is None:
        m = re.search(r"BogoMIPS:\s*([\d.]+)", text)
        mhz, how = (float(m.group(1)) / 2, "BogoMIPS/2 (no MHz in lscpu)") if m else (2000.0, "guessed 2 GHz")
    if "avx512f" in flags:
        per_cycle, simd = 64, "AVX-512 FMA x2"
    elif "avx2" in flags and "fma" in flags:
        per_cycle, simd = 32, "AVX2 FMA, 2 pipes x 8 floats x 2"
    elif "avx" in flags:
        per_cycle, simd = 16, "AVX"
    else:
        per_cycle, simd = 8, "SSE"
    peak = cores * mhz / 1000 * per_cycle
    return peak, f"{cores} cores x {mhz / 1000:.2f} GHz ({how}) x {per_cycle} FLOP/cycle ({simd})"


def eager_mindgrab(weights: Path) -> nn.Module:
    """The reference network in plain PyTorch modules (brainchop's own layout)."""
    state = read_state_dict(weights)
    dil = [16, 8, 4, 2, 1] * 5
    blocks: list[nn.Module] = []
    for i, d in enumerate(dil):
        blocks.append(
            nn.Sequential(
                nn.Conv3d(1 if i == 0 else 15, 15, 3, padding=d, dilation=d, bias=False),
                nn.GroupNorm(15, 15, affine=False),
                nn.GELU(),
            )
        )
    blocks.append(nn.Conv3d(15, 2, 1))
    net = nn.Sequential()
    net.add_module("model", nn.Sequential(*blocks))
    net.load_state_dict(
        {f"model.{k.split('.', 1)[1]}" if not k.startswith("model.") else k: v for k, v in state.items()},
        strict=True,
    )
    return net.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument(
        "--skip-eager", action="store_true", help="engine only (the eager pass takes minutes)"
    )
    args = parser.parse_args()
    folder = Path(args.data) / "brainchop_models" / "mindgrab"
    t1 = io.load(Path(args.data) / "brainchop_models" / "t1_crop.nii.gz")
    peak, how = cpu_peak_gflops()
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, FP32 peak ~{peak:.0f} GFLOP/s = {how}"
    )

    clear_cache()
    model = get_model(str(folder), device="cpu")
    flops_per_voxel = model.module.flops(1)
    t = time.perf_counter()
    pred = predict(model, t1, device="cpu")
    engine_s = time.perf_counter() - t
    mask = pred.primary.data
    box = pred.provenance["parameters"]["crop_box"]
    crop_vox = int(np.prod([b - a for a, b in box]))
    print(
        f"engine: {engine_s:.1f} s end to end, crop {[b - a for a, b in box]} "
        f"({crop_vox / 256**3:.0%} of 256^3), "
        f"brain {mask.sum() * t1.voxel_volume_ml:.0f} mL, on the input grid: {pred.primary.same_grid(t1)}"
    )
    print(
        f"engine: {flops_per_voxel * crop_vox / engine_s / 1e9:.1f} GFLOP/s achieved "
        f"({flops_per_voxel * crop_vox / engine_s / 1e9 / peak:.0%} of peak)"
    )
    if args.skip_eager:
        return

    net = eager_mindgrab(folder / "model.pth")
    x = np.asarray(t1.data, np.float32)
    x = (x - x.min()) / (x.max() - x.min())
    t = time.perf_counter()
    with torch.no_grad():
        logits = net(torch.from_numpy(x)[None, None])
    ref = logits[0].argmax(0).numpy().astype(np.uint8)
    eager_s = time.perf_counter() - t
    ref_post = fill_holes(largest_component(ref))
    print(
        f"eager : {eager_s:.1f} s (NCDHW fp32 whole 256^3), brain {ref.sum() * t1.voxel_volume_ml:.0f} mL, "
        f"{flops_per_voxel * 256**3 / eager_s / 1e9:.1f} GFLOP/s "
        f"({flops_per_voxel * 256**3 / eager_s / 1e9 / peak:.0%} of peak)"
    )
    print(f"speed-up engine vs eager: {eager_s / engine_s:.2f}x")
    print(
        f"Dice engine vs eager argmax: {dice(mask, ref):.4f}; vs eager + same postprocessing: "
        f"{dice(mask, ref_post):.4f}"
    )


if __name__ == "__main__":
    main()
