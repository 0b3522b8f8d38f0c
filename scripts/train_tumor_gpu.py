#!/usr/bin/env python
"""Train the tumour U-Net on a GPU: 5-fold cross-validation and the shipped model, in one run.

Reads the file written by ``scripts/prep_tumor_gpu.py`` (needs only torch, numpy and
safetensors: no nibabel, no MONAI) and trains, round-robin in one process, one network per
fold plus one on every case ("final"). Fold k never sees expert case k nor the whole-tumour-only
cases assigned to it; at the end each fold network predicts its validation cases (whole head
crop, as ``predict`` does) with all their contrasts and without T1c (FLAIR + T1), and the
probabilities come back as uint8 for the threshold / post-processing choice on the CPU
(``scripts/cv_tumor_seg.py``). The shipped card's header holds the exact command, e.g.:

    python scripts/train_tumor_gpu.py --data .gpu/tumor_data.bin --out OUT --seconds 400 --seed 0

Recipe: 128^3 patches (batch 2, two in three centred near tumour), random flips / axis swap /
rotation +-15 deg / scaling 0.85-1.15 (one trilinear resampling on the GPU), per-contrast
gamma, bias field, scale / shift, noise and thick-slice blur, T1 / T2 dropped (p 0.5 each),
T1c dropped (p 0.25: the TC / ET loss is then masked, as on whole-tumour-only cases), FLAIR
dropped (p 0.1, when T1c is kept); BCE + soft Dice per region (TC, WT, ET); AdamW, warm-up then
cosine decay over the wall-time budget, bf16 autocast, EMA weights (saved as float16).
"""

from __future__ import annotations

import argparse
import json
import lzma
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
try:
    from unet import UNet3D  # the copy next to this script on the GPU machine
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from napari_brain_dl.core.models.unet import UNet3D

EXPERT = ["brats_2013_pat0003_1", "brats_2013_pat0004_1", "brats_2013_pat0005_1", "brats_2013_pat0006_1",
          "brats18_tcia05_396_1"]
WT_FOLDS = {0: ["wt_case_0", "wt_case_6"], 1: ["wt_case_1"], 2: ["wt_case_2"], 3: ["wt_case_3"],
            4: ["wt_case_4", "wt_case_5"]}
# brats20_training_001 is the subject of wt_case_5 (FLAIR correlation 0.92, scripts/prep_tumor_gpu.py
# --check) and resembles brats18_tcia05_396_1 more than any other pair (0.53): fold 4 never sees it.
EXCLUDE = {4: ["brats20_training_001"]}


def load_data(path: Path) -> dict[str, dict]:
    """Case name -> {image uint8 (4, box), labels uint8 (box), kind, present, box, grid}."""
    index = json.loads(path.with_suffix(".json").read_text())
    raw = lzma.decompress(path.read_bytes())
    cases: dict[str, dict] = {}
    for e in index:
        arr = np.frombuffer(raw, np.uint8, e["size"], e["offset"]).reshape(e["shape"])
        c = cases.setdefault(e["case"], {k: e[k] for k in ("kind", "present", "box", "grid")})
        c[e["what"]] = arr
    return cases


def dequantise(q: torch.Tensor) -> torch.Tensor:
    """uint8 (0 background, 1..255 = z in [-5, 5]) -> float z-scores, background 0."""
    z = (q.float() - 1) / 254 * 10 - 5
    return torch.where(q == 0, torch.zeros_like(z), z)


class Sampler:
    """Augmented (B, 4, P, P, P) patches and (B, 3, P, P, P) region targets, all on the GPU."""

    def __init__(self, cases: dict[str, dict], names: list[str], patch: int, device: torch.device,
                 rng: np.random.Generator) -> None:
        self.names, self.patch, self.dev, self.rng = names, patch, device, rng
        for n in names:  # device copies shared by every sampler
            if "gpu_img" not in cases[n]:
                cases[n]["gpu_img"] = dequantise(torch.from_numpy(cases[n]["image"].copy()).to(device))[None]
                lab = torch.from_numpy(cases[n]["labels"].copy()).to(device)
                cases[n]["gpu_lab"] = lab.float()[None, None]
        self.img = {n: cases[n]["gpu_img"] for n in names}
        self.lab = {n: cases[n]["gpu_lab"] for n in names}
        self.tum = {n: np.argwhere(cases[n]["labels"] > 0) for n in names}
        self.kind = {n: cases[n]["kind"] for n in names}
        self.present = {n: cases[n]["present"] for n in names}
        r = torch.arange(patch, device=device, dtype=torch.float32) - (patch - 1) / 2
        self.base = torch.stack(torch.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)

    def one(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng, p = self.rng, self.patch
        name = self.names[int(rng.integers(len(self.names)))]
        img, lab = self.img[name], self.lab[name]
        shape = np.array(img.shape[2:])
        pts = self.tum[name]
        if rng.random() < 0.67 and len(pts):
            centre = pts[rng.integers(len(pts))] + rng.integers(-p // 4, p // 4 + 1, 3)
        else:
            centre = np.array([rng.integers(0, n) for n in shape])
        mat = np.diag(np.where(rng.random(3) < 0.5, -1.0, 1.0))
        if rng.random() < 0.3:
            mat = mat[[1, 0, 2]]
        if rng.random() < 0.6:
            rot = np.eye(3)
            for a, ang in enumerate(np.deg2rad(rng.uniform(-15, 15, 3))):
                j, k = [d for d in range(3) if d != a]
                r = np.eye(3)
                r[j, j] = r[k, k] = np.cos(ang)
                r[j, k], r[k, j] = -np.sin(ang), np.sin(ang)
                rot = rot @ r
            mat = rot @ mat * rng.uniform(0.85, 1.15)
        m, c, size = self.put(mat), self.put(centre), self.put(np.maximum(shape - 1, 1))
        coords = self.base @ m.T + c  # voxel (i, j, k) in the case
        grid = (2 * coords / size - 1).flip(-1).reshape(1, p, p, p, 3)
        x = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
        y = F.grid_sample(lab, grid, mode="nearest", padding_mode="zeros", align_corners=True)[0, 0]
        present = list(self.present[name])
        multi = self.kind[name] != "wt"
        if present[1] and rng.random() < 0.25:  # no contrast agent: FLAIR (+T1) only
            present[1] = present[3] = False
        for ch in (2, 3):
            if present[ch] and rng.random() < 0.5:
                present[ch] = False
        if present[1] and present[0] and rng.random() < 0.1:
            present[0] = False
        chans = [self.intensity(x[ch]) if present[ch] else torch.zeros_like(x[ch]) for ch in range(4)]
        x = torch.stack(chans)
        if rng.random() < 0.15:  # thick slices, all contrasts alike
            x = self.thick(x)
        yl = y.round()
        target = torch.stack([(yl == 1) | (yl == 3), yl > 0, yl == 3]).float()
        full = multi and present[1]
        weight = self.put([float(full), 1.0, float(full)])
        return x, target, weight

    def put(self, a: object) -> torch.Tensor:
        """A small float32 array onto the device without a stream sync (pinned, non-blocking)."""
        t = torch.from_numpy(np.asarray(a, np.float32))
        if self.dev.type != "cuda":
            return t
        return t.pin_memory().to(self.dev, non_blocking=True)

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        xs, ts, ws = zip(*(self.one() for _ in range(n)), strict=True)
        return torch.stack(xs), torch.stack(ts), torch.stack(ws)

    def intensity(self, x: torch.Tensor) -> torch.Tensor:
        """Gamma, bias field, scale / shift, noise on one contrast's foreground (z-score units)."""
        rng = self.rng
        fg = x != 0
        if rng.random() < 0.3:  # gamma on a 0-1 rescale of [-5, 5]
            g = float(np.exp(rng.uniform(-0.4, 0.4)))
            x = ((x + 5) / 10).clamp(0, 1).pow(g) * 10 - 5
        if rng.random() < 0.35:  # multiplicative field on the raw scale: z' = b z + r (b - 1)
            coarse = self.put(rng.normal(0, 0.2, (1, 1, 4, 4, 4)))
            b = torch.exp(F.interpolate(coarse, size=x.shape, mode="trilinear", align_corners=True)[0, 0])
            x = b * x + float(rng.uniform(2, 5)) * (b - 1)
        x = x * float(rng.uniform(0.8, 1.2)) + float(rng.uniform(-0.3, 0.3))
        if rng.random() < 0.25:
            x = x + torch.randn_like(x) * float(rng.uniform(0.02, 0.2))
        return torch.where(fg, x.clamp(-5, 5), torch.zeros_like(x))

    def thick(self, x: torch.Tensor) -> torch.Tensor:
        """Average `k` slices along one axis and interpolate back (2-5 mm slices)."""
        k, ax = int(self.rng.integers(2, 6)), int(self.rng.integers(3))
        fg = x != 0
        kernel = [1, 1, 1]
        kernel[ax] = k
        low = F.avg_pool3d(x[None], kernel, kernel, ceil_mode=True)
        up = F.interpolate(low, size=x.shape[1:], mode="trilinear", align_corners=False)[0]
        return torch.where(fg, up, torch.zeros_like(up))


def region_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """BCE + soft Dice (over the batch) per region; `weight` (B, 3) masks unsupervised regions."""
    w = weight[:, :, None, None, None]
    bce = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * w).mean((2, 3, 4))
    bce = (bce.sum(0) / weight.sum(0).clamp(min=1)).sum() / 3
    p = torch.sigmoid(logits)
    inter = (p * target * w).sum((0, 2, 3, 4))
    denom = ((p + target) * w).sum((0, 2, 3, 4))
    dice = 1 - (2 * inter + 1.0) / (denom + 1.0)
    have = (weight.sum(0) > 0).float()
    return bce + (dice * have).sum() / have.sum().clamp(min=1)


@torch.no_grad()
def predict_box(net: torch.nn.Module, image: np.ndarray, device: torch.device) -> np.ndarray:
    """Sigmoid TC / WT / ET on a (4, box) z-scored image: one whole-crop pass, padded to /16, fp32."""
    x = torch.from_numpy(image).to(device)[None]
    pads = [(-n) % 16 for n in x.shape[2:]]
    xp = F.pad(x, [q for pad in reversed(pads) for q in (0, pad)])
    y = net(xp.contiguous(memory_format=torch.channels_last_3d))[(..., *(slice(0, n) for n in x.shape[2:]))]
    return torch.sigmoid(y[0].float()).cpu().numpy()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seconds", type=float, default=400, help="training wall-time budget (all models)")
    ap.add_argument("--max-steps", type=int, default=10**9, help="stop each model after this many steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--features", default="16,32,64,128,256")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--folds", default="0,1,2,3,4,final")
    ap.add_argument("--keep-fold", default="4", help="return this fold's weights too")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    dev = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(args.seed)
    cases = load_data(args.data)
    feats = [int(f) for f in args.features.split(",")]
    runs = []
    for i, fold in enumerate(args.folds.split(",")):
        hold = [] if fold == "final" else [EXPERT[int(fold)], *WT_FOLDS[int(fold)]]
        skip = hold + ([] if fold == "final" else EXCLUDE.get(int(fold), []))
        names = [n for n in cases if n not in skip]
        rng = np.random.default_rng(args.seed * 100 + i)
        net = UNet3D(4, 3, feats).to(dev).to(memory_format=torch.channels_last_3d)
        ema = UNet3D(4, 3, feats).to(dev).to(memory_format=torch.channels_last_3d)
        ema.load_state_dict(net.state_dict())
        ema.requires_grad_(False)
        opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
        runs.append({"fold": fold, "hold": hold, "net": net, "ema": ema, "opt": opt, "step": 0, "losses": [],
                     "sampler": Sampler(cases, names, args.patch, dev, rng), "train": names})
    print(f"setup {time.perf_counter() - t0:.1f} s; {len(runs)} models, "
          f"{sum(p.numel() for p in runs[0]['net'].parameters())} parameters each", flush=True)
    start = time.perf_counter()
    amp = {"device_type": dev.type, "dtype": torch.bfloat16, "enabled": dev.type == "cuda"}
    warm = 60
    while True:
        frac = (time.perf_counter() - start) / args.seconds
        if frac >= 1 or all(r["step"] >= args.max_steps for r in runs):
            break
        for r in runs:
            if r["step"] >= args.max_steps:
                continue
            s = r["step"]
            lr = args.lr * min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
            for g in r["opt"].param_groups:
                g["lr"] = lr
            x, t, w = r["sampler"].batch(args.batch)
            with torch.autocast(**amp):
                logits = r["net"](x.contiguous(memory_format=torch.channels_last_3d))
            loss = region_loss(logits.float(), t, w)
            r["opt"].zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(r["net"].parameters(), 12.0)
            r["opt"].step()
            decay = min(0.995, (1 + s) / (10 + s))
            with torch.no_grad():
                for pe, pn in zip(r["ema"].parameters(), r["net"].parameters(), strict=True):
                    pe.lerp_(pn, 1 - decay)
                for be, bn in zip(r["ema"].buffers(), r["net"].buffers(), strict=True):
                    be.copy_(bn)
            r["losses"].append(loss.detach())
            r["step"] += 1
        s = runs[0]["step"]
        if s % 50 == 0:
            msg = " ".join(f"{r['fold']}:{torch.stack(r['losses'][-50:]).mean().item():.3f}" for r in runs)
            print(f"step {s} t {time.perf_counter() - start:.0f} s lr {lr:.1e} loss {msg}", flush=True)
    train_s = time.perf_counter() - start
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # fp32 evaluation
    print(f"trained {[r['step'] for r in runs]} steps in {train_s:.0f} s", flush=True)
    from safetensors.torch import save_file

    args.out.mkdir(parents=True, exist_ok=True)
    folds, summary = {}, {"train_seconds": train_s, "args": vars(args) | {"data": str(args.data),
                                                                                     "out": str(args.out)}}
    for r in runs:
        ema = r["ema"].eval()
        state = {k: v.detach().to(torch.float16).contiguous().cpu() for k, v in ema.state_dict().items()}
        summary[str(r["fold"])] = {"steps": r["step"], "hold": r["hold"], "train": r["train"],
                                   "final_loss": float(torch.stack(r["losses"][-100:]).mean())}
        if r["fold"] == "final":
            save_file(state, str(args.out / "brats-tumor-seg.safetensors"))
            continue
        folds.update({f"fold{r['fold']}.{k}": v for k, v in state.items()})
        preds = {}
        for name in r["hold"]:
            img = dequantise(torch.from_numpy(cases[name]["image"].copy())).numpy()
            modes = {"noT1c": [0, 2]}
            if cases[name]["kind"] != "wt":
                modes = {"full": [0, 1, 2, 3], **modes}
            for mode, keep in modes.items():
                x = np.zeros_like(img)
                x[keep] = img[keep]
                prob = predict_box(ema, x, dev) * np.any(x != 0, axis=0)  # 0 outside the head
                prob = prob if mode == "full" else prob[1:2]
                preds[f"{name}|{mode}"] = np.rint(prob * 255).astype(np.uint8)
        np.savez_compressed(args.out / f"cv_fold{r['fold']}.npz", **preds)
    keep = {k: v for k, v in folds.items() if k.startswith(f"fold{args.keep_fold}.")}
    if keep:  # one fold's weights, to check the CPU predict path against this evaluation
        path = args.out / f"fold{args.keep_fold}.safetensors"
        save_file({k.split(".", 1)[1]: v for k, v in keep.items()}, str(path))
    print("SUMMARY " + json.dumps(summary), flush=True)
    print(f"done in {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
