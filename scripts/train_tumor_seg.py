#!/usr/bin/env python
"""Train one 3D brain-tumour segmentation network on a CPU (the earlier ``brats-tumor-seg`` recipe).

Superseded for the shipped card by ``scripts/train_tumor_gpu.py`` (all 16 labelled exams,
5-fold cross-validation, GPU; see the card's header). The earlier card was an ensemble of
three runs of this script, combined by ``scripts/ensemble_tumor_seg.py``. A single run
(about 75-90 minutes on one thread of a 2-core CPU), e.g.:

    python scripts/train_tumor_seg.py --steps 2400 --minutes 74 --seed 0 --threads 1 --eval-every 500

``--minutes`` stops the run by wall time (the learning rate decays with whichever of steps
or time runs out first), so the exact weights depend on the machine's speed; without
``--minutes`` the run is speed independent (2400 steps, about 80 minutes).

What it does:
- data: the visible BraTS cases from ``scripts/brats_data.py`` (../shared/data, read only):
  brats_2013_pat0003/4/5 (FLAIR + T1c, expert labels) and brats_gli_00001 (four contrasts,
  algorithm labels). brats_2013_pat0006_1 is held out: never trained on, only reported.
- network: the project's ``UNet3D`` (4 inputs FLAIR, T1c, T1, T2; 3 sigmoid outputs TC, WT, ET).
- training: region-based (soft Dice + BCE per region), patches cut around tumour voxels
  two times in three (64^3, batch 2; 96^3, batch 1 for the last fifth so the instance norms
  see more context, as in whole-head inference), flips / rotation / scaling / intensity
  augmentation, T1 and T2 dropped at random (the model works with FLAIR + T1c only), AdamW
  with warm-up and polynomial decay, an exponential moving average of the weights (shipped).
- output: ``--out``/brats-tumor-seg.safetensors (float16) and ``brats-tumor-seg.yaml`` (card
  with sha256), then Dice of every case through the real ``predict`` path with that card,
  written into the card's metrics (and to ``--metrics`` JSON when given).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

import brats_data as bd  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from scipy import ndimage  # noqa: E402

from napari_brain_dl.core.models import prepost  # noqa: E402
from napari_brain_dl.core.models.unet import UNet3D  # noqa: E402

MODEL_ID = "brats-tumor-seg"


# ------------------------------------------------------------------ data
class Sampler:
    """Augmented patches, the augmentations of ``brats_data`` made cheap enough for one CPU thread.

    Same recipe as ``brats_data.random_patch`` + ``spatial`` + ``intensity``: a patch centred
    (+- a quarter patch) on a tumour voxel with probability `p_tumor`, else anywhere in the
    head box; random flips, in-plane axis swap, rotation +-15 degrees and scaling 0.85-1.15
    (pulled straight from the whole case, so no empty corners); per-channel gamma, smooth
    bias field, scale / shift and noise on the foreground; T1 and T2 dropped at random.
    """

    def __init__(
        self, cases: list[bd.Case], patch: int, p_tumor: float, drop: float, rng: np.random.Generator
    ) -> None:
        self.cases, self.patch, self.p_tumor, self.drop, self.rng = cases, patch, p_tumor, drop, rng
        self.tumour = [np.argwhere(c.labels > 0).astype(np.int32) for c in cases]
        self.present = [[c for c in range(c_.image.shape[0]) if np.any(c_.image[c])] for c_ in cases]

    def __call__(self) -> tuple[np.ndarray, np.ndarray]:
        rng, size = self.rng, self.patch
        i = int(rng.integers(len(self.cases)))
        case, pts = self.cases[i], self.tumour[i]
        shape = np.array(case.labels.shape)
        if rng.random() < self.p_tumor and len(pts):
            centre = pts[rng.integers(len(pts))] + rng.integers(-size // 4, size // 4 + 1, 3)
        else:
            centre = np.array([rng.integers(0, n) for n in shape])
        mat = np.eye(3)
        for ax in range(3):
            if rng.random() < 0.5:
                mat[ax, ax] = -1.0
        if rng.random() < 0.3:
            mat = mat[[1, 0, 2]]
        rotate = rng.random() < 0.5
        img = np.zeros((case.image.shape[0], size, size, size), np.float32)
        if rotate:
            angles = np.deg2rad(rng.uniform(-15, 15, 3))
            rot = np.eye(3)
            for a, ang in enumerate(angles):
                j, k = [d for d in range(3) if d != a]
                r = np.eye(3)
                r[j, j] = r[k, k] = np.cos(ang)
                r[j, k], r[k, j] = -np.sin(ang), np.sin(ang)
                rot = rot @ r
            mat = rot @ mat * rng.uniform(0.85, 1.15)
            offset = centre - mat @ np.full(3, (size - 1) / 2)
            for c in self.present[i]:
                ndimage.affine_transform(
                    case.image[c], mat, offset, output_shape=(size,) * 3, output=img[c], order=1
                )
            lab = ndimage.affine_transform(case.labels, mat, offset, output_shape=(size,) * 3, order=0)
        else:  # flips and axis swap only: exact voxel copies
            start = centre - size // 2
            src = tuple(slice(max(0, s), min(n, s + size)) for s, n in zip(start, shape, strict=True))
            dst = tuple(slice(sl.start - s, sl.stop - s) for sl, s in zip(src, start, strict=True))
            img[(slice(None), *dst)] = case.image[(slice(None), *src)]
            lab = np.zeros((size,) * 3, np.uint8)
            lab[dst] = case.labels[src]
            perm = [int(np.flatnonzero(row)[0]) for row in mat]
            img, lab = np.transpose(img, [0, *(p + 1 for p in perm)]), np.transpose(lab, perm)
            for ax in range(3):
                if mat[ax].sum() < 0:
                    img, lab = np.flip(img, ax + 1), np.flip(lab, ax)
            img, lab = np.ascontiguousarray(img), np.ascontiguousarray(lab)
        for c in self.present[i]:
            img[c] = self.intensity(img[c], drop=c >= 2)
        return img, bd.regions(lab)

    def intensity(self, x: np.ndarray, drop: bool) -> np.ndarray:
        rng = self.rng
        fg = x != 0
        if drop and rng.random() < self.drop:
            return np.zeros_like(x)
        if not fg.any():
            return x
        if rng.random() < 0.3:  # gamma on a 0-1 rescaled copy
            lo, hi = float(x[fg].min()), float(x[fg].max())
            g = np.exp(rng.uniform(-0.35, 0.35))
            x = np.where(fg, lo + (hi - lo) * (np.clip((x - lo) / max(hi - lo, 1e-6), 0, 1) ** g), 0)
        if rng.random() < 0.3:  # low-frequency bias field
            coarse = rng.normal(0, 0.15, (4, 4, 4))
            field = ndimage.zoom(coarse, np.array(x.shape) / 4, order=1)
            field = field[: x.shape[0], : x.shape[1], : x.shape[2]]
            x = x * np.exp(field)
        x = np.where(fg, x * rng.uniform(0.85, 1.15) + rng.uniform(-0.2, 0.2), 0)
        if rng.random() < 0.2:
            x = np.where(fg, x + rng.normal(0, rng.uniform(0.02, 0.1), x.shape), 0)
        return x.astype(np.float32)


def region_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE + soft Dice (over the batch) for each of the TC / WT / ET channels."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    dims = (0, 2, 3, 4)
    inter = (p * target).sum(dims)
    denom = p.sum(dims) + target.sum(dims)
    dice = 1 - (2 * inter + 1.0) / (denom + 1.0)
    return bce + dice.mean()


# ------------------------------------------------------------------ quick evaluation (arrays)
@torch.inference_mode()
def infer_array(net: torch.nn.Module, image: np.ndarray, roi: int | None = None) -> np.ndarray:
    """Labels 0-3 for a (4, X, Y, Z) normalised image: whole head crop (roi None) or sliding window."""
    box = prepost.foreground_bbox(image, 8, 16)
    x = torch.from_numpy(np.ascontiguousarray(image[(slice(None), *box)]))[None]
    if roi is None:
        pads = [(-n) % net.divisor for n in x.shape[2:]]
        xp = F.pad(x, [p for pad in reversed(pads) for p in (0, pad)])
        y = net(xp)[(..., *(slice(0, n) for n in x.shape[2:]))]
    else:
        from monai.inferers import sliding_window_inference

        y = sliding_window_inference(x, (roi,) * 3, 1, net, overlap=0.5, mode="gaussian")
    prob = torch.sigmoid(y[0]).numpy()
    full = np.zeros((3, *image.shape[1:]), np.float32)
    full[(slice(None), *box)] = prob
    return prepost.brats_regions(full, 0.5, 3)



def fmt(d: dict[str, float]) -> str:
    return " ".join(f"{k} {v:.3f}" for k, v in d.items())


# ------------------------------------------------------------------ card
CARD = """\
# Model card: project 3D U-Net for brain-tumour (glioma) segmentation.
# Written by scripts/train_tumor_seg.py; the shipped weights came from:
#   {command}
{init_line}# (with --minutes the step count, and so the exact weights, depend on the machine's speed)
id: brats-tumor-seg
name: Brain tumour segmentation (3D U-Net, BraTS regions)
task: segmentation
description: >-
  Glioma sub-regions on skull-stripped, co-registered multi-contrast MRI (BraTS style):
  1 necrotic / non-enhancing tumour core, 2 peritumoral edema, 3 enhancing tumour
  (BraTS 2023 convention). Needs FLAIR and T1c; uses T1 and T2 when given (pass
  all-zero volumes on the same grid when they are missing; it was trained with them dropped).
  A small network trained on four cases: a research demonstrator, expect errors on
  scans unlike the training data (not skull-stripped, other field strengths, post-operative).
inputs: [FLAIR, T1c, T1, T2]
orientation: LPS
spacing: 1.0
preprocessing:
- {{op: resample, spacing: 1.0}}
- {{op: zscore_foreground}}
postprocessing:
- {{op: sigmoid}}
- {{op: brats_regions, threshold: 0.5, enhancing: 3}}
output:
  kind: labels
  channels: [TC, WT, ET]
labels:
- {{value: 0, name: background, color: [0, 0, 0]}}
- {{value: 1, name: necrotic / non-enhancing core, color: [255, 0, 0]}}
- {{value: 2, name: edema, color: [0, 200, 0]}}
- {{value: 3, name: enhancing, color: [255, 230, 0]}}
architecture:
  type: project
  name: unet
  in_channels: 4
  out_channels: 3
  features: {features}
weights: {{file: brats-tumor-seg.safetensors, sha256: {sha256}, format: safetensors}}
inference: {{mode: whole, crop: head, margin: 8, divisible: 16}}
license: >-
  Weights trained by this project on BraTS data: brats2015_flair_t1c cases (CC BY-NC-SA 3.0 CH,
  via deepmedic) and BraTS-GLI-00001 (BraTS 2023, research use). Non-commercial use only
  (share-alike); the project's code licence does not apply to these weights.
intended_use: Research only, not for diagnosis or treatment planning.
source: >-
  Trained by napari-brain-dl (scripts/train_tumor_seg.py, seed {seed}) on
  brats_2013_pat0003_1, pat0004_1, pat0005_1 (expert labels, FLAIR + T1c only) and
  brats_gli_00001 (four contrasts; its labels are the output of a BraTS 2023 challenge-winning
  algorithm, not an expert annotation). {init_text}{steps} steps ({big}),
  {minutes:.0f} minutes on {machine}, torch {torch}.
metrics:
  validation_case: >-
    brats_2013_pat0006_1 (held out, expert labels, FLAIR + T1c; T1 and T2 given as zeros)
  dice_WT: {WT:.3f}
  dice_TC: {TC:.3f}
  dice_ET: {ET:.3f}
  note: >-
    One held-out case only, measured through the napari-brain-dl predict path with this card;
    not a benchmark. Training-case Dice (not independent): {train}.
"""


def write_outputs(out: Path, state: dict[str, torch.Tensor], info: dict) -> Path:
    """Float16 safetensors weights + the card (metrics filled in later)."""
    from safetensors.torch import save_file

    from napari_brain_dl.core.models.loaders import sha256_file

    out.mkdir(parents=True, exist_ok=True)
    wpath = out / f"{MODEL_ID}.safetensors"
    save_file({k: v.detach().to(torch.float16).contiguous() for k, v in state.items()}, str(wpath))
    info["sha256"] = sha256_file(wpath)
    return wpath


def write_card(out: Path, info: dict) -> Path:
    path = out / f"{MODEL_ID}.yaml"
    path.write_text(CARD.format(**info), encoding="utf-8")
    return path


# ------------------------------------------------------------------ evaluation through predict
def predict_cases(card_path: Path) -> dict[str, dict[str, float]]:
    """Dice of every visible case through the real engine (files read raw from ../shared/data)."""
    from napari_brain_dl.core import io
    from napari_brain_dl.core.inference import clear_cache, predict

    clear_cache()
    results: dict[str, dict[str, float]] = {}
    for name in bd.EXPERT:
        folder = bd.DATA / "brats2015_flair_t1c" / name
        flair = io.load(folder / "Flair_subtrMeanDivStd.nii.gz")
        t1c = io.load(folder / "T1c_subtrMeanDivStd.nii.gz")
        zero = flair.with_data(np.zeros(flair.shape, np.float32), name="missing")
        raw = np.rint(io.load(folder / "OTMultiClass.nii.gz").data).astype(int)
        ref = np.array([0, 1, 2, 1, 3], np.uint8)[raw]  # 2013 labels -> BraTS 2023
        t = time.perf_counter()
        pred = predict(str(card_path), [flair, t1c, zero, zero], device="cpu")
        seconds = time.perf_counter() - t
        results[name] = {**bd.region_dice(np.asarray(pred.primary.data), ref), "seconds": round(seconds, 1)}
        print(f"  predict {name} (FLAIR+T1c): {fmt(results[name])}", flush=True)
    folder = bd.DATA / "brats_gli_00001"
    vols = [io.load(folder / f) for f in ("t2f.nii.gz", "t1c.nii.gz", "t1n.nii.gz", "t2w.nii.gz")]
    ref = np.rint(io.load(folder / "seg-BraTS23_1.nii.gz").data).astype(np.uint8)
    zero = vols[0].with_data(np.zeros(vols[0].shape, np.float32), name="missing")
    for tag, inputs in (("all four", vols), ("FLAIR+T1c", [vols[0], vols[1], zero, zero])):
        t = time.perf_counter()
        pred = predict(str(card_path), inputs, device="cpu")
        seconds = time.perf_counter() - t
        key = f"brats_gli_00001 ({tag})"
        results[key] = {**bd.region_dice(np.asarray(pred.primary.data), ref), "seconds": round(seconds, 1)}
        print(f"  predict {key}: {fmt(results[key])}", flush=True)
    return results


# ------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2400, help="optimiser steps (default 2400)")
    ap.add_argument("--minutes", type=float, default=None,
                    help="also stop (and decay the LR) by wall time: the run then depends on speed")
    ap.add_argument("--out", type=Path, default=ROOT / "resources" / "models",
                    help="folder for card + weights")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--big-patch", type=int, default=96, help="patch side in the last part of training")
    ap.add_argument("--big-batch", type=int, default=1)
    ap.add_argument("--big-from", type=float, default=0.8,
                    help="fraction of training after which --big-patch is used (whole-head-like statistics)")
    ap.add_argument("--features", default="8,16,32,64,128")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--p-tumor", type=float, default=0.67)
    ap.add_argument("--drop", type=float, default=0.5, help="probability of dropping T1 / T2 (each)")
    ap.add_argument("--ema", type=float, default=0.998)
    ap.add_argument("--holdout", default="",
                    help="also hold out these training cases (comma separated; pilots)")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from these safetensors weights (a fine-tuning stage)")
    ap.add_argument("--init-command", default="",
                    help="the command that made the --init weights (recorded in the card)")
    ap.add_argument("--eval-every", type=int, default=400)
    ap.add_argument("--eval-sw", action="store_true",
                    help="also report sliding-window Dice (64^3 windows) at the end")
    ap.add_argument("--no-predict", action="store_true", help="skip the final evaluation through predict")
    ap.add_argument("--metrics", type=Path, default=None, help="also write all Dice values to this JSON file")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    feats = tuple(int(f) for f in args.features.split(","))
    command = "python scripts/train_tumor_seg.py " + shlex.join(sys.argv[1:] if argv is None else argv)

    hold = [h for h in args.holdout.split(",") if h]
    names = [n for n in bd.EXPERT if n not in bd.VALIDATION and n not in hold] + ["brats_gli_00001"]
    names = [n for n in names if n not in hold]
    t0 = time.perf_counter()
    cases = [bd.load_case(n) for n in names]
    evals = [bd.load_case(n) for n in bd.VALIDATION + hold]
    print(f"train on {names}; report on {[c.name for c in evals]} "
          f"({time.perf_counter() - t0:.0f} s to load)", flush=True)

    sampler = Sampler(cases, args.patch, args.p_tumor, args.drop, rng)
    net = UNet3D(4, 3, feats).to(memory_format=torch.channels_last_3d)
    if args.init is not None:
        from safetensors.torch import load_file

        net.load_state_dict({k: v.float() for k, v in load_file(str(args.init)).items()})
        print(f"initialised from {args.init}", flush=True)
    ema = copy.deepcopy(net)
    for p in ema.parameters():
        p.requires_grad_(False)
    n_params = sum(p.numel() for p in net.parameters())
    print(f"UNet3D features {feats}: {n_params / 1e6:.2f} M parameters", flush=True)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    warm = 50

    def evaluate(tag: str, sw: bool = False) -> None:
        for model, mname in ((net, "raw"), (ema, "ema")):
            model.eval()
            for c in evals:
                whole = bd.region_dice(infer_array(model, c.image), c.labels)
                line = f"  [{tag}] {mname} {c.name}: whole {fmt(whole)}"
                if sw:
                    line += f" | sw64 {fmt(bd.region_dice(infer_array(model, c.image, 64), c.labels))}"
                print(line, flush=True)
        net.train()

    start = time.perf_counter()
    losses: list[float] = []
    step = 0
    data_s = 0.0
    while True:
        elapsed = time.perf_counter() - start
        progress = step / args.steps
        if args.minutes:
            progress = max(progress, elapsed / (60 * args.minutes))
        if progress >= 1:
            break
        lr = args.lr * min(1.0, (step + 1) / warm) * (1 - progress) ** 0.9
        for g in opt.param_groups:
            g["lr"] = lr
        td = time.perf_counter()
        big = progress >= args.big_from
        sampler.patch = args.big_patch if big else args.patch
        batch = [sampler() for _ in range(args.big_batch if big else args.batch)]
        x = torch.from_numpy(np.stack([b[0] for b in batch])).contiguous(memory_format=torch.channels_last_3d)
        y = torch.from_numpy(np.stack([b[1] for b in batch]))
        data_s += time.perf_counter() - td
        loss = region_loss(net(x), y)
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
                  f"(data {data_s / step:.2f}) elapsed {el / 60:.1f} min", flush=True)
        if args.eval_every and step % args.eval_every == 0:
            evaluate(f"step {step}")
    minutes = (time.perf_counter() - start) / 60
    print(f"trained {step} steps in {minutes:.1f} min", flush=True)
    evaluate("final", args.eval_sw)

    info = {
        "command": command, "features": list(feats), "seed": args.seed, "steps": step, "batch": args.batch,
        "patch": args.patch, "minutes": minutes,
        "big": f"batch {args.batch} of {args.patch}^3 patches, then batch {args.big_batch} of "
               f"{args.big_patch}^3 from {args.big_from:.0%} of the schedule",
        "torch": torch.__version__,
        "init_line": (f"#   (stage 2, started from the weights of: {args.init_command})\n"
                      if args.init else ""),
        "init_text": ("Fine-tuned from an earlier run of the same script (see the header), then "
                      if args.init else ""),
        "machine": f"{args.threads} thread(s) of a {os.cpu_count()}-core {bd.cpu_name()} machine, no GPU",
    }
    ema.eval()
    write_outputs(args.out, ema.state_dict(), info)
    placeholder = {"WT": float("nan"), "TC": float("nan"), "ET": float("nan"), "train": "not measured"}
    card_path = write_card(args.out, {**info, **placeholder})
    print(f"wrote {card_path} and weights sha256 {info['sha256']}", flush=True)
    if args.no_predict:
        return 0
    results = predict_cases(card_path)
    val = results[bd.VALIDATION[0]]
    train = "; ".join(
        f"{k.replace('brats_2013_', '')} WT {v['WT']:.2f} TC {v['TC']:.2f} ET {v['ET']:.2f}"
        for k, v in results.items() if k not in bd.VALIDATION + hold
    )
    write_card(args.out, {**info, "WT": val["WT"], "TC": val["TC"], "ET": val["ET"], "train": train})
    if args.metrics:
        dump = {"info": info, "holdout": hold, "dice": results}
        args.metrics.write_text(json.dumps(dump, indent=2), "utf-8")
    print(f"validation {bd.VALIDATION[0]}: {fmt({k: val[k] for k in ('WT', 'TC', 'ET')})}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
