"""Train the "tumour present" classifier (resources/models/tumor-present.yaml) on this CPU.

    python scripts/train_tumor_classifier.py --steps 500 --seed 0 --threads 1

Data (../shared/data, never copied): the visible BraTS cases except the validation case
brats_2013_pat0006_1 give FLAIR + T1c with tumour labels; healthy T1 volumes (chris_t1,
spm152, brainchop t1_crop, T1c channel empty) are extra negatives, since no healthy FLAIR
is available. Every volume goes through the card's own preprocessing: reorientation to
LPS, ``zscore_foreground`` per channel, resampling to 2 mm.

Samples are 48^3 patches (96 mm): half centred on tumour, the rest tumour-free patches of
the same brains and patches of the healthy volumes; T1c is dropped from 30 % of samples.
Loss: cross-entropy of the pooled logits ("tumour in the patch") plus an auxiliary BCE of
the 8 mm evidence map against the tumour fraction of each cell, which makes the heatmaps'
right answer (the tumour) the thing the model actually uses.

Afterwards: accuracy / AUC on held-out patches and whole volumes of pat0006 and two
held-out healthy volumes, a temperature fitted on those validation patches (stored in the
card), weights written as safetensors and the card updated (sha256, metrics, temperature).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import brats_data  # noqa: E402

from napari_brain_dl.core import io  # noqa: E402
from napari_brain_dl.core.models import prepost  # noqa: E402
from napari_brain_dl.core.models.classifier import TumorClassifier  # noqa: E402
from napari_brain_dl.core.volume import reorient  # noqa: E402

CARD = ROOT / "resources" / "models" / "tumor-present.yaml"
WEIGHTS = CARD.with_name("tumor-present.safetensors")
HEALTHY_TRAIN = [
    "niivue_chris/chris_t1.nii.gz",
    "niivue_templates/spm152.nii.gz",
    "brainchop_models/t1_crop.nii.gz",
]
HEALTHY_VAL = ["niivue_templates/MR_Gd.nii.gz", "niivue_templates/MNI152_T1_2mm.nii.gz"]
SPACING = 2.0
PATCH = 48


def to_model_grid(
    channels: list[np.ndarray], affine: np.ndarray, mask: np.ndarray | None = None, normalised: bool = False
):
    """Card preprocessing on LPS 1 mm arrays: zscore_foreground, resample to 2 mm, crop to the head."""
    data = np.stack([c if normalised else prepost.zscore_foreground(c) for c in channels]).astype(np.float32)
    grid = prepost.target_grid(data.shape, affine, {"op": "resample", "spacing": SPACING})
    data = grid.forward(data)
    frac = grid.forward(mask[None].astype(np.float32))[0] if mask is not None else np.zeros(data.shape[1:])
    box = brats_data.head_box(data, margin=4)
    return np.ascontiguousarray(data[(slice(None), *box)]), np.ascontiguousarray(frac[box], dtype=np.float32)


def brats_volume(name: str) -> tuple[np.ndarray, np.ndarray]:
    case = brats_data.load_case(name, crop=False)  # already zscore_foreground-normalised
    return to_model_grid([case.image[0], case.image[1]], case.affine, case.labels > 0, normalised=True)


def healthy_volume(rel: str) -> tuple[np.ndarray, np.ndarray]:
    vol, _ = reorient(io.load(brats_data.DATA / rel), ("L", "P", "S"))
    t1 = np.asarray(vol.data, np.float32)
    return to_model_grid([t1, np.zeros_like(t1)], vol.affine)


def crop(arr: np.ndarray, centre: np.ndarray, size: int) -> np.ndarray:
    """`size`^3 patch around `centre` (zero padded), arr (C, ...)."""
    shape = np.array(arr.shape[1:])
    start = centre - size // 2
    out = np.zeros((arr.shape[0], size, size, size), np.float32)
    src = tuple(slice(max(0, s), min(n, s + size)) for s, n in zip(start, shape, strict=True))
    dst = tuple(slice(sl.start - s, sl.stop - s) for sl, s in zip(src, start, strict=True))
    out[(slice(None), *dst)] = arr[(slice(None), *src)]
    return out


def sample(rng: np.random.Generator, vol: tuple[np.ndarray, np.ndarray], positive: bool):
    """One (image, tumour-fraction) patch: on tumour, or tumour-free brain."""
    img, frac = vol
    brain = np.argwhere(img[0] != 0)
    for _ in range(50):
        if positive:
            pts = np.argwhere(frac > 0.5)
            centre = pts[rng.integers(len(pts))] + rng.integers(-10, 11, 3)
        else:
            centre = brain[rng.integers(len(brain))]
        stacked = crop(np.concatenate([img, frac[None]]), centre, PATCH)
        tumour_ml = stacked[-1].sum() * SPACING**3 / 1000
        if (positive and tumour_ml >= 1.0) or (
            not positive and tumour_ml == 0 and (stacked[0] != 0).mean() > 0.2
        ):
            return stacked[:-1], stacked[-1]
    return stacked[:-1], stacked[-1]


def augment(rng: np.random.Generator, img: np.ndarray, frac: np.ndarray):
    for ax in range(3):
        if rng.random() < 0.5:
            img, frac = np.flip(img, ax + 1), np.flip(frac, ax)
    if rng.random() < 0.3:
        img, frac = np.swapaxes(img, 1, 2), np.swapaxes(frac, 0, 1)
    img = brats_data.intensity(rng, np.ascontiguousarray(img), drop_optional=0.0)
    if rng.random() < 0.3:
        img[1] = 0  # T1c is optional
    return np.ascontiguousarray(img), np.ascontiguousarray(frac)


def batch(rng, tumour_vols, healthy_vols, n):
    xs, fs, ys = [], [], []
    for _ in range(n):
        r = rng.random()
        if r < 0.5:
            img, frac = sample(rng, tumour_vols[rng.integers(len(tumour_vols))], True)
        elif r < 0.8:
            img, frac = sample(rng, tumour_vols[rng.integers(len(tumour_vols))], False)
        else:
            img, frac = sample(rng, healthy_vols[rng.integers(len(healthy_vols))], False)
        img, frac = augment(rng, img, frac)
        xs.append(img)
        fs.append(frac)
        ys.append(1 if frac.sum() * SPACING**3 / 1000 >= 1.0 else 0)
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(fs))[:, None], torch.tensor(ys)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    return float(
        ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg))
    )


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature minimising the negative log-likelihood of softmax(logits / T)."""
    z = torch.tensor(logits, dtype=torch.float64)
    y = torch.tensor(labels)
    temps = np.exp(np.linspace(np.log(0.2), np.log(20), 200))
    nll = [float(torch.nn.functional.cross_entropy(z / t, y)) for t in temps]
    return float(temps[int(np.argmin(nll))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    start = time.time()
    train_names = [n for n in brats_data.EXPERT if n not in brats_data.VALIDATION] + ["brats_gli_00001"]
    tumour_vols = [brats_volume(n) for n in train_names]
    healthy_vols = [healthy_volume(p) for p in HEALTHY_TRAIN]
    print(f"data ready in {time.time() - start:.0f} s", flush=True)

    net = TumorClassifier(2)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.steps, pct_start=0.1)
    net.train()
    for step in range(1, args.steps + 1):
        x, frac, y = batch(rng, tumour_vols, healthy_vols, args.batch)
        ev = net.evidence(x)
        logits = torch.stack([torch.zeros(len(x)), net.pool(ev)], 1)
        target = torch.nn.functional.avg_pool3d(frac, 4)
        aux = torch.nn.functional.binary_cross_entropy_with_logits(ev, target.clamp(0, 1))
        loss = torch.nn.functional.cross_entropy(logits, y) + aux
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 25 == 0:
            acc = float((logits.argmax(1) == y).float().mean())
            print(
                f"step {step}/{args.steps} loss {loss.item():.3f} aux {aux.item():.3f} acc {acc:.2f} "
                f"{(time.time() - start) / 60:.1f} min",
                flush=True,
            )
    net.eval()
    train_minutes = (time.time() - start) / 60
    metrics, temperature = evaluate(net, rng)
    save(net, metrics, temperature, args, train_minutes)
    print(f"done in {(time.time() - start) / 60:.1f} min: {metrics}", flush=True)


@torch.no_grad()
def evaluate(net: TumorClassifier, rng: np.random.Generator) -> tuple[dict, float]:
    """Held-out patches / whole volumes -> metrics, and the fitted temperature."""
    val = brats_volume(brats_data.VALIDATION[0])
    logits, labels = [], []
    for i in range(120):
        img, frac = sample(rng, val, positive=i % 2 == 0)
        if i % 4 == 1:
            img = img.copy()
            img[1] = 0
        labels.append(1 if frac.sum() * SPACING**3 / 1000 >= 1.0 else 0)
        logits.append(net(torch.from_numpy(img)[None])[0].numpy())
    logits_a, labels_a = np.array(logits), np.array(labels)
    temperature = fit_temperature(logits_a, labels_a)
    whole = {
        brats_data.VALIDATION[0]: float(
            torch.softmax(net(torch.from_numpy(val[0])[None])[0] / temperature, 0)[1]
        )
    }
    for rel in HEALTHY_VAL:
        vol = healthy_volume(rel)
        whole[Path(rel).name] = float(
            torch.softmax(net(torch.from_numpy(vol[0])[None])[0] / temperature, 0)[1]
        )
    metrics = {
        "validation_case": brats_data.VALIDATION[0],
        "patch_accuracy": round(float(((logits_a[:, 1] > 0) == labels_a).mean()), 3),
        "patch_auc": round(auc(logits_a[:, 1], labels_a), 3),
        "patches": len(labels_a),
        "whole_volume_p_tumour": {k: round(v, 4) for k, v in whole.items()},
    }
    return metrics, temperature


def save(
    net: TumorClassifier, metrics: dict, temperature: float, args: argparse.Namespace, minutes: float
) -> None:
    from safetensors.torch import save_file

    from napari_brain_dl.core.models.loaders import sha256_file

    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(WEIGHTS))
    card = yaml.safe_load(CARD.read_text())
    card["weights"]["sha256"] = sha256_file(WEIGHTS)
    card["output"]["temperature"] = round(temperature, 4)
    card["metrics"] = {
        **metrics,
        "training_minutes": round(minutes, 1),
        "steps": args.steps,
        "seed": args.seed,
    }
    header = "".join(line + "\n" for line in CARD.read_text().splitlines() if line.startswith("#"))
    CARD.write_text(header + yaml.safe_dump(card, sort_keys=False, width=100))


if __name__ == "__main__":
    main()
