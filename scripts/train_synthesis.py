#!/usr/bin/env python
"""Train the shipped contrast-synthesis models (cards ``synth-flair-from-t1c``, ``synth-t2-from-t1``).

Reproduce the shipped weights and cards (one thread of a 2-core CPU, one model at a time):

    python scripts/train_synthesis.py --pair t2-from-t1 --spacing 2 --patch 32 --batch 4 \
        --steps 3000 --minutes 22 --seed 0 --threads 1
    python scripts/train_synthesis.py --pair flair-from-t1c --spacing 2 --patch 32 --batch 4 \
        --steps 3000 --minutes 22 --seed 0 --threads 1

With ``--minutes`` the run stops (and the learning rate decays) by wall time, so the exact
step count and weights depend on the machine's speed; drop it for a speed-independent run.
``--eval-only`` re-measures an existing card without training.

What it does:
- data (``scripts/brats_data.py``, read from ../shared/data, never copied):
  * flair-from-t1c: trains on brats_2013_pat0003/4/5 (z-scored FLAIR + T1c) and brats_gli_00001
    (raw int16); brats_2013_pat0006_1 is held out (the project's validation case).
  * t2-from-t1: only brats_gli_00001 has both contrasts. A WITHIN-SUBJECT split: the superior
    40 % of the brain's axial slices (a slab of the voxel grid) is held out and never trained on;
    the network sees only the inferior 60 % (heavy augmentation). The held-out metrics are
    therefore optimistic for other subjects: same scanner, same patient, same tumour.
- network: the project's ``UNet3D`` (1 input, 1 linear output), L1 + 0.5 MSE inside the brain,
  64^3 patches, flips / axis swap / rotation +-15 deg / scaling / gamma / bias field / scale and
  shift of the source, AdamW with warm-up and polynomial decay, EMA of the weights (shipped).
- output: ``--out``/<id>.safetensors (float16) and <id>.yaml (card with sha256, the reference
  target quantiles of the histogram baseline, and the held-out PSNR / SSIM / MAE of the model
  and of both histogram baselines measured through the real ``synthesize`` path).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

import brats_data as bd  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from scipy import ndimage  # noqa: E402

from napari_brain_dl.core.models import prepost  # noqa: E402
from napari_brain_dl.core.models.unet import UNet3D  # noqa: E402
from napari_brain_dl.core.tasks.synthesize import brain_quantiles  # noqa: E402

CH = {name: i for i, name in enumerate(bd.CONTRASTS)}  # FLAIR 0, T1c 1, T1 2, T2 3
PAIRS: dict[str, dict[str, Any]] = {
    "flair-from-t1c": {"id": "synth-flair-from-t1c", "source": "T1c", "target": "FLAIR"},
    "t2-from-t1": {"id": "synth-t2-from-t1", "source": "T1", "target": "T2"},
}
SLAB_FRACTION = 0.4  # t2-from-t1: superior fraction of the brain's axial slices held out


# ------------------------------------------------------------------ data
def training_arrays(
    pair: str, spacing: float = 1.0
) -> tuple[list[np.ndarray], list[np.ndarray], dict[str, Any]]:
    """(2, X, Y, Z) [source, target] arrays and tumour masks for training, and the split.

    With `spacing` > 1 mm the arrays are resampled exactly as the engine resamples at inference
    (`prepost.target_grid` + `GridMap.forward`, linear; tumour masks nearest).
    """
    arrays, tumour, split = _arrays_1mm(pair)
    if spacing == 1.0:
        return arrays, tumour, split
    out_a, out_t = [], []
    for arr, tum in zip(arrays, tumour, strict=True):
        grid = prepost.target_grid(arr.shape, np.eye(4), {"op": "resample", "spacing": spacing})
        out_a.append(np.ascontiguousarray(grid.forward(arr)))
        out_t.append(grid.forward(tum[None].astype(np.uint8), order=0)[0] > 0)
    return out_a, out_t, split


def _arrays_1mm(pair: str) -> tuple[list[np.ndarray], list[np.ndarray], dict[str, Any]]:
    p = PAIRS[pair]
    s, t = CH[p["source"]], CH[p["target"]]
    if pair == "flair-from-t1c":
        names = [n for n in bd.EXPERT if n not in bd.VALIDATION] + ["brats_gli_00001"]
        cases = [bd.load_case(n) for n in names]
        arrays = [np.ascontiguousarray(c.image[[s, t]]) for c in cases]
        return arrays, [c.labels > 0 for c in cases], {"train": names, "validation": bd.VALIDATION[0]}
    case = bd.load_case("brats_gli_00001", crop=False)
    start, stop = slab("brats_gli_00001")
    arr, lab = case.image[[s, t], :, :, :start], case.labels[:, :, :start]
    box = bd.head_box(arr, margin=8)
    split = {"train": [f"brats_gli_00001 voxel slices k < {start} (inferior 60 % of the brain)"],
             "validation": f"brats_gli_00001 voxel slices {start} <= k < {stop} (superior 40 %)",
             "slab": {"axis": 2, "start": start, "stop": stop}}
    return [np.ascontiguousarray(arr[(slice(None), *box)])], [lab[box] > 0], split


def slab(name: str) -> tuple[int, int]:
    """Voxel range [start, stop) along axis 2 (inferior -> superior, LPS) of the held-out slab."""
    case = bd.load_case(name, crop=False)
    ks = np.flatnonzero(np.any(case.image != 0, axis=(0, 1, 2)))
    lo, hi = int(ks[0]), int(ks[-1]) + 1
    return lo + round((1 - SLAB_FRACTION) * (hi - lo)), case.image.shape[3]


class Sampler:
    """Augmented [source, target] patches centred in the brain (or a tumour, sometimes)."""

    def __init__(self, arrays: list[np.ndarray], tumour: list[np.ndarray], size: int,
                 p_rotate: float, rng: np.random.Generator) -> None:
        self.arrays, self.size, self.p_rotate, self.rng = arrays, size, p_rotate, rng
        self.brain = [np.argwhere((a[0] != 0) & (a[1] != 0)).astype(np.int32) for a in arrays]
        self.tumour = [np.argwhere(m).astype(np.int32) for m in tumour]

    def __call__(self) -> tuple[np.ndarray, np.ndarray]:
        rng, size = self.rng, self.size
        i = int(rng.integers(len(self.arrays)))
        arr = self.arrays[i]
        pts = self.tumour[i] if rng.random() < 0.3 and len(self.tumour[i]) else self.brain[i]
        centre = pts[rng.integers(len(pts))] + rng.integers(-size // 4, size // 4 + 1, 3)
        mat = np.eye(3)
        for ax in range(3):
            if rng.random() < 0.5:
                mat[ax, ax] = -1.0
        if rng.random() < 0.3:
            mat = mat[[1, 0, 2]]
        if rng.random() < self.p_rotate:
            rot = np.eye(3)
            for a, ang in enumerate(np.deg2rad(rng.uniform(-15, 15, 3))):
                j, k = [d for d in range(3) if d != a]
                r = np.eye(3)
                r[j, j] = r[k, k] = np.cos(ang)
                r[j, k], r[k, j] = -np.sin(ang), np.sin(ang)
                rot = rot @ r
            mat = rot @ mat * rng.uniform(0.9, 1.1)
        offset = centre - mat @ np.full(3, (size - 1) / 2)
        patch = np.stack([ndimage.affine_transform(c, mat, offset, output_shape=(size,) * 3, order=1)
                          for c in arr])
        mask = (np.abs(patch[0]) > 1e-6) & (np.abs(patch[1]) > 1e-6)
        return self.intensity(patch[0], mask), np.stack([patch[1], mask.astype(np.float32)])

    def intensity(self, x: np.ndarray, fg: np.ndarray) -> np.ndarray:
        """Gamma, smooth bias field, scale / shift and noise on the source's foreground."""
        rng = self.rng
        if rng.random() < 0.4:
            lo, hi = float(x.min()), float(x.max())
            g = np.exp(rng.uniform(-0.3, 0.3))
            x = lo + (hi - lo) * np.clip((x - lo) / max(hi - lo, 1e-6), 0, 1) ** g
        if rng.random() < 0.3:
            field = ndimage.zoom(rng.normal(0, 0.1, (4, 4, 4)), np.array(x.shape) / 4, order=1)
            x = x * np.exp(field[: x.shape[0], : x.shape[1], : x.shape[2]])
        x = x * rng.uniform(0.9, 1.1) + rng.uniform(-0.1, 0.1)
        if rng.random() < 0.2:
            x = x + rng.normal(0, rng.uniform(0.02, 0.08), x.shape)
        return np.where(fg, x, 0).astype(np.float32)


# ------------------------------------------------------------------ evaluation through synthesize
def evaluate(pair: str, card_path: Path) -> dict[str, Any]:
    """Held-out PSNR / SSIM / MAE: model, histogram (reference quantiles), histogram (oracle).

    Scores use `image_scores(match=True)` inside the brain (source and real target foreground;
    for t2-from-t1 also inside the held-out slab) against the real acquired target.
    """
    from napari_brain_dl.core import io
    from napari_brain_dl.core.image_metrics import image_scores
    from napari_brain_dl.core.inference import clear_cache
    from napari_brain_dl.core.models.card import ModelCard
    from napari_brain_dl.core.models.prepost import zscore_foreground
    from napari_brain_dl.core.tasks.synthesize import match_quantiles, synthesize

    p = PAIRS[pair]
    src_file, real_file, case = eval_files(pair)
    src, real = io.load(src_file), io.load(real_file)
    mask = (src.data > src.data.min()) & (real.data > real.data.min())
    if pair == "t2-from-t1":
        mask[:, :, : slab("brats_gli_00001")[0]] = False
    clear_cache()
    results: dict[str, Any] = {"case": case}
    t = time.perf_counter()
    syn = synthesize({p["source"]: src}, p["target"], method=str(card_path), device="cpu")
    seconds = round(time.perf_counter() - t, 1)
    results["model"] = {**image_scores(syn.image.data, real.data, mask).as_dict(), "seconds": seconds}
    ref = ModelCard.from_file(card_path).output["reference_quantiles"]
    t = time.perf_counter()
    zsrc = zscore_foreground(src.data)
    hist = match_quantiles(zsrc, zsrc != 0, ref)
    seconds = round(time.perf_counter() - t, 1)
    results["histogram_reference"] = {**image_scores(hist, real.data, mask).as_dict(), "seconds": seconds}
    t = time.perf_counter()
    oracle = match_quantiles(zsrc, mask, brain_quantiles(zscore_foreground(real.data), mask))
    seconds = round(time.perf_counter() - t, 1)
    results["histogram_oracle"] = {**image_scores(oracle, real.data, mask).as_dict(), "seconds": seconds}
    for k in ("model", "histogram_reference", "histogram_oracle"):
        print(f"  {case} {k}: {results[k]}", flush=True)
    return results


def eval_files(pair: str) -> tuple[Path, Path, str]:
    """(source file, real target file, case description) of the held-out evaluation."""
    if pair == "flair-from-t1c":
        folder = bd.DATA / "brats2015_flair_t1c" / bd.VALIDATION[0]
        return (folder / "T1c_subtrMeanDivStd.nii.gz", folder / "Flair_subtrMeanDivStd.nii.gz",
                bd.VALIDATION[0])
    folder = bd.DATA / "brats_gli_00001"
    return folder / "t1n.nii.gz", folder / "t2w.nii.gz", "brats_gli_00001 superior slab"


def reference_quantiles(arrays: list[np.ndarray]) -> list[float]:
    """101 quantiles of the z-scored target inside the brain, pooled over the training arrays."""
    vals = np.concatenate([a[1][(a[0] != 0) & (a[1] != 0)] for a in arrays])
    return [round(float(q), 4) for q in brain_quantiles(vals, np.ones(vals.shape, bool))]



# ------------------------------------------------------------------ card
def dump(card: dict[str, Any]) -> str:
    """YAML text of a card (short lists inline)."""
    return yaml.safe_dump(card, sort_keys=False, width=100, default_flow_style=None)


def write_card(out: Path, pair: str, info: dict[str, Any], metrics: dict[str, Any] | None) -> Path:
    """Write <id>.yaml (a header comment with the command, then the card)."""
    p = PAIRS[pair]
    source, target = p["source"], p["target"]
    within = pair == "t2-from-t1"
    card = {
        "id": p["id"],
        "name": f"{target} synthesis from {source} (3D U-Net)",
        "task": "synthesis",
        "description": (
            f"SYNTHETIC {target} computed from {source} on skull-stripped, co-registered brain MRI. "
            "The result is not an acquired scan: it can hide or invent lesions. Output in z-score "
            "units of the target inside the brain, its lowest value outside the source's foreground."
        ),
        "inputs": [source],
        "orientation": "LPS",
        "spacing": info.get("spacing", 1.0),
        "preprocessing": [{"op": "resample", "spacing": info.get("spacing", 1.0)},
                          {"op": "zscore_foreground"}],
        "postprocessing": [],
        "output": {"kind": "image", "target": target, "sources": [source], "synthetic": True,
                   "units": "z-score of the target inside the brain",
                   "reference_quantiles": info["quantiles"]},
        "architecture": {"type": "project", "name": "unet", "in_channels": 1, "out_channels": 1,
                         "features": info["features"]},
        "weights": {"file": f"{p['id']}.safetensors", "sha256": info["sha256"], "format": "safetensors"},
        "inference": {"mode": "whole", "crop": "head", "margin": 8, "divisible": info["divisor"]},
        "license": (
            "Weights trained by this project on BraTS data: brats2015_flair_t1c cases (CC BY-NC-SA 3.0 CH, "
            "via deepmedic) and BraTS-GLI-00001 (BraTS 2023, research use). Non-commercial use only "
            "(share-alike); the project's code licence does not apply to these weights."
            if not within else
            "Weights trained by this project on BraTS-GLI-00001 (BraTS 2023, research use, via "
            "BrainLesion/deep_quality_estimation, Apache-2.0 repository). Research, non-commercial use only; "
            "the project's code licence does not apply to these weights."
        ),
        "intended_use": "Research only: never for diagnosis, never in place of an acquired scan.",
        "source": (
            f"Trained by napari-brain-dl (scripts/train_synthesis.py --pair {pair}, seed {info['seed']}) on "
            f"{'; '.join(info['split']['train'])}. {info['steps']} steps (batch {info['batch']} of "
            f"{info['patch']}^3 patches at {info.get('spacing', 1.0):g} mm), "
            f"{info['minutes']:.1f} minutes on {info['machine']}, torch {info['torch']}."
        ),
        "metrics": {
            "validation": (f"WITHIN-SUBJECT split: {info['split']['validation']}; the inferior part of the "
                           "same scan was trained on, so these numbers are optimistic for other subjects"
                           if within else f"{info['split']['validation']} (held out, never trained on)"),
            **({"validation_slab": info["split"]["slab"]} if within else {}),
            "definition": ("napari_brain_dl.core.image_metrics.image_scores(match=True) inside the brain "
                           "(source and real target foreground): PSNR over the 0.5-99.5 percentile range of "
                           "the real contrast after a least-squares linear intensity match; MAE as a "
                           "fraction of that range"),
            **(metrics or {"note": "not measured yet"}),
        },
    }
    header = (f"# Model card: {card['name']}. Written by scripts/train_synthesis.py; the shipped weights "
              f"came from:\n#   {info['command']}\n# (with --minutes the step count and so the exact weights "
              "depend on the machine's speed)\n")
    path = out / f"{p['id']}.yaml"
    path.write_text(header + dump(card), encoding="utf-8")
    return path


# ------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pair", choices=sorted(PAIRS), required=True)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--minutes", type=float, default=None, help="also stop (and decay the LR) by wall time")
    ap.add_argument("--out", type=Path, default=ROOT / "resources" / "models")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--features", default="8,16,32,64")
    ap.add_argument("--spacing", type=float, default=1.0, help="model grid in mm (the card resamples to it)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--ema", type=float, default=0.995)
    ap.add_argument("--init", type=Path, default=None, help="start from these safetensors weights (stage 2)")
    ap.add_argument("--init-command", default="", help="command that made the --init weights")
    ap.add_argument("--eval-only", action="store_true", help="re-measure the existing card, no training")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    p = PAIRS[args.pair]
    card_path = args.out / f"{p['id']}.yaml"
    if args.eval_only:
        return _finish(args, card_path, {})
    feats = [int(f) for f in args.features.split(",")]
    command = "python scripts/train_synthesis.py " + " ".join(sys.argv[1:] if argv is None else argv)
    arrays, tumour, split = training_arrays(args.pair, args.spacing)
    print(f"{args.pair}: train {split['train']}, hold out {split['validation']}", flush=True)
    heavy = args.pair == "t2-from-t1"
    sampler = Sampler(arrays, tumour, args.patch, 0.6 if heavy else 0.3, rng)
    net = UNet3D(1, 1, feats).to(memory_format=torch.channels_last_3d)
    if args.init is not None:
        from safetensors.torch import load_file

        net.load_state_dict({k: v.float() for k, v in load_file(str(args.init)).items()})
        command += f"  (stage 2, started from the weights of: {args.init_command or args.init})"
    ema = copy.deepcopy(net)
    for q in ema.parameters():
        q.requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    start, step, losses = time.perf_counter(), 0, []
    while True:
        progress = step / args.steps
        if args.minutes:
            progress = max(progress, (time.perf_counter() - start) / (60 * args.minutes))
        if progress >= 1:
            break
        lr = args.lr * min(1.0, (step + 1) / 30) * (1 - progress) ** 0.9
        for g in opt.param_groups:
            g["lr"] = lr
        batch = [sampler() for _ in range(args.batch)]
        x = torch.from_numpy(np.stack([b[0][None] for b in batch]))
        x = x.contiguous(memory_format=torch.channels_last_3d)
        y = torch.from_numpy(np.stack([b[1] for b in batch]))
        target, mask = y[:, :1], y[:, 1:]
        diff = (net(x) - target) * mask
        n = mask.sum().clamp(min=1.0)
        loss = diff.abs().sum() / n + 0.5 * (diff**2).sum() / n
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pn in zip(ema.parameters(), net.parameters(), strict=True):
                pe.lerp_(pn, 1 - decay)
        losses.append(float(loss.detach()))
        step += 1
        if step % 25 == 0:
            el = time.perf_counter() - start
            print(f"step {step} loss {np.mean(losses[-25:]):.4f} lr {lr:.2e} {el / step:.2f} s/step "
                  f"elapsed {el / 60:.1f} min", flush=True)
    minutes = (time.perf_counter() - start) / 60
    print(f"trained {step} steps in {minutes:.1f} min", flush=True)

    from safetensors.torch import save_file

    from napari_brain_dl.core.models.loaders import sha256_file

    args.out.mkdir(parents=True, exist_ok=True)
    wpath = args.out / f"{p['id']}.safetensors"
    save_file({k: v.detach().to(torch.float16).contiguous() for k, v in ema.state_dict().items()}, str(wpath))
    info = {"command": command, "features": feats, "divisor": 2 ** (len(feats) - 1), "seed": args.seed,
            "steps": step, "batch": args.batch, "spacing": args.spacing, "patch": args.patch,
            "minutes": minutes,
            "torch": torch.__version__, "split": split, "quantiles": reference_quantiles(arrays),
            "machine": f"{args.threads} thread(s) of a {os.cpu_count()}-core {bd.cpu_name()} machine "
                       "(shared with another training job), no GPU",
            "sha256": sha256_file(wpath)}
    write_card(args.out, args.pair, info, None)
    return _finish(args, card_path, info)


def _finish(args: argparse.Namespace, card_path: Path, info: dict[str, Any]) -> int:
    metrics = evaluate(args.pair, card_path)
    model, oracle, ref = metrics["model"], metrics["histogram_oracle"], metrics["histogram_reference"]
    best = max(oracle["psnr"], ref["psnr"])
    metrics["psnr_gain_over_best_histogram_db"] = round(model["psnr"] - best, 2)
    met = model["psnr"] - best >= 3.0 and model["ssim"] > max(oracle["ssim"], ref["ssim"])
    metrics["issue_target"] = (
        f"model >= 3 dB PSNR and higher SSIM than the stronger histogram baseline: "
        f"{'met' if met else 'NOT met'} ({model['psnr'] - best:+.2f} dB)"
    )
    if info:
        write_card(args.out, args.pair, info, metrics)
    else:  # --eval-only: replace the metrics block only
        card = yaml.safe_load(card_path.read_text(encoding="utf-8"))
        header = "".join(line + "\n" for line in card_path.read_text().splitlines() if line.startswith("#"))
        card["metrics"] = {k: v for k, v in card["metrics"].items() if k in ("validation", "validation_slab",
                                                                               "definition")} | metrics
        card_path.write_text(header + dump(card), encoding="utf-8")
    print(f"wrote {card_path}: model PSNR {model['psnr']:.2f} dB vs best histogram {best:.2f} dB", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
