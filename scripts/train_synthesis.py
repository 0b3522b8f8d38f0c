#!/usr/bin/env python
"""Train the multi-contrast synthesis model ``synth-mri`` (T1 / T2 / FLAIR from any present contrasts).

Shipped weights and card (all 16 subjects of ``scripts/synth_data.py``, one CPU thread):

    OMP_NUM_THREADS=1 python scripts/train_synthesis.py --minutes 1000 --steps 6300 --patch 32 --batch 4 \
        --seed 0 --threads 1 --out resources/models

Cross-validation folds (``--holdout K`` leaves fold K of ``synth_data.FOLDS`` out) are trained
and scored by ``scripts/eval_synthesis.py``, which calls `train` below with the same settings.
The learning rate decays over ``--steps`` or ``--minutes`` of wall time, whichever ends first;
the shipped recipe is fixed by steps (6300: what 36 minutes of one core gave cross-validation
fold 0), so its weights do not depend on the machine's speed. (Until stop 13: 8 minutes, about
1100 steps; cross-validation showed the network undertrained.)

What it does:
- the network works on a 2 mm grid (`SPACING`; subjects resampled as at inference);
- every step draws a subject (four-contrast subjects twice as often), a patch centred in the
  brain (a third of the time in the tumour), random flips and mild per-channel intensity
  changes, and a random non-empty subset of the subject's contrasts as input (as the BraSyn
  challenge does); every T1 / T2 / FLAIR the subject has but the input lacks is a target;
- loss: L1 inside the brain on those target channels only (a second stage, ``--init`` with
  ``--loss mse``, was tried at stop 16 and changed nothing: bench/README.md);
- AdamW, warm-up then cosine decay by wall time, EMA of the weights (shipped, float32).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import synth_data as sd  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from brats_data import cpu_name  # noqa: E402

from napari_brain_dl.core.models.synthnet import BASE_SOURCE, CONTRASTS, IN_CHANNELS, TARGETS  # noqa: E402
from napari_brain_dl.core.models.unet import UNet3D  # noqa: E402
from napari_brain_dl.core.tasks.synthesize import match_quantiles  # noqa: E402

FEATURES = (8, 16, 32, 64)
SPACING = 2.0  # mm: the grid the network sees (4x the context of 1 mm for the same compute per voxel)


def coarse(subject: sd.Subject, spacing: float = SPACING) -> sd.Subject:
    """The subject resampled onto the network's grid exactly as at inference (`prepost.target_grid`)."""
    from napari_brain_dl.core.models.prepost import target_grid

    if spacing == 1.0:
        return subject
    names = list(subject.images)
    grid = target_grid(subject.brain.shape, subject.affine, {"op": "resample", "spacing": spacing})
    arr = grid.forward(np.stack([subject.images[n] for n in names]))
    tum = grid.forward(subject.tumour[None].astype(np.float32))[0] > 0.5
    return sd.Subject(
        subject.name,
        {n: np.ascontiguousarray(a) for n, a in zip(names, arr, strict=True)},
        tum,
        subject.paths,
        subject.label_path,
        grid.dst_affine,
    )


MODEL_ID = "synth-mri"
CARD_FILE = f"{MODEL_ID}.yaml"
WEIGHTS_FILE = f"{MODEL_ID}.safetensors"


class Sampler:
    """Patches with a random input subset: (input (8, P, P, P), target (3, P, P, P), weight (3, P, P, P))."""

    def __init__(
        self,
        subjects: list[sd.Subject],
        size: int,
        rng: np.random.Generator,
        reference: dict[str, list[float]] | None = None,
    ) -> None:
        self.subjects, self.size, self.rng, self.reference = subjects, size, rng, reference
        # residual: every source histogram-matched onto every other target's reference (float16)
        self.matched = [
            {
                (c, t): match_quantiles(x, x != 0, reference[t]).astype(np.float16)
                for c, x in s.images.items()
                for t in TARGETS
                if t != c
            }
            if reference
            else {}
            for s in subjects
        ]
        self.brain = [np.argwhere(s.brain).astype(np.int32) for s in subjects]
        self.tumour = [np.argwhere(s.tumour & s.brain).astype(np.int32) for s in subjects]
        w = np.array([2.0 if len(s.images) == 4 else 1.0 for s in subjects])
        self.p = w / w.sum()

    def subset(self, have: list[str]) -> tuple[list[str], list[str]]:
        """A random non-empty input subset that leaves at least one T1 / T2 / FLAIR out."""
        while True:
            keep = [c for c in have if self.rng.random() < 0.5]
            targets = [c for c in have if c in TARGETS and c not in keep]
            if keep and targets:
                return keep, targets

    def __call__(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng, size = self.rng, self.size
        i = int(rng.choice(len(self.subjects), p=self.p))
        s = self.subjects[i]
        pts = self.tumour[i] if len(self.tumour[i]) and rng.random() < 0.33 else self.brain[i]
        centre = pts[rng.integers(len(pts))]
        shape = np.array(s.brain.shape)
        start = np.clip(
            centre - size // 2 + rng.integers(-size // 4, size // 4 + 1, 3), 0, np.maximum(shape - size, 0)
        )
        sl = tuple(slice(int(a), int(a) + size) for a in start)
        have = [c for c in CONTRASTS if c in s.images]
        keep, targets = self.subset(have)
        extra = len(TARGETS) if self.reference else 0
        x = np.zeros((IN_CHANNELS + extra, size, size, size), np.float32)
        y = np.zeros((len(TARGETS), size, size, size), np.float32)
        w = np.zeros_like(y)
        brain = s.brain[sl]
        dst = tuple(slice(0, b.shape[0]) for b in [np.empty(n) for n in brain.shape])
        for c in keep:
            j = CONTRASTS.index(c)
            patch = s.images[c][sl]
            if rng.random() < 0.5:  # mild residual intensity change (gamma-like, scale)
                patch = patch * rng.uniform(0.9, 1.1) + rng.uniform(-0.1, 0.1) * (patch != 0)
            x[(j, *dst)] = patch
            x[len(CONTRASTS) + j] = 1.0
        for k, t in enumerate(TARGETS if extra else ()):  # the histogram-matched base of each target
            src = next((c for c in BASE_SOURCE[t] if c in keep), None)
            if t not in keep and src is not None:
                x[(IN_CHANNELS + k, *dst)] = self.matched[i][(src, t)][sl]
        for c in targets:
            k = TARGETS.index(c)
            y[(k, *dst)] = s.images[c][sl]
            w[(k, *dst)] = brain
        for ax in range(3):
            if rng.random() < 0.5:
                x, y, w = (np.flip(a, ax + 1) for a in (x, y, w))
        return np.ascontiguousarray(x), np.ascontiguousarray(y), np.ascontiguousarray(w)


def train(
    subjects: list[sd.Subject],
    *,
    minutes: float,
    steps: int,
    patch: int,
    batch: int,
    seed: int,
    lr: float = 2e-3,
    residual: bool = False,
    loss: str = "l1",
    init: Path | None = None,
    log: Any = print,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train one network; returns the EMA network (eval mode) and run facts.

    With `residual` the network gets the histogram-matched base images as 3 more inputs, its
    output is added to them, and its last layer starts at zero (it starts as histogram matching).
    `loss` is "l1" or "mse" (squared error: what PSNR after a linear match scores); `init`
    starts from these weights (a second stage), else from scratch.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    subjects = [coarse(s) for s in subjects]
    reference = reference_quantiles(subjects) if residual else None
    extra = len(TARGETS) if residual else 0
    net = UNet3D(IN_CHANNELS + extra, len(TARGETS), FEATURES)
    if init is not None:
        from safetensors.torch import load_file

        net.load_state_dict(load_file(str(init)))
    elif residual:
        torch.nn.init.zeros_(net.head.weight)
        torch.nn.init.zeros_(net.head.bias)
    ema = copy.deepcopy(net)
    for q in ema.parameters():
        q.requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sample = Sampler(subjects, patch, rng, reference)
    t0, step, running = time.time(), 0, None
    budget = minutes * 60.0
    while step < steps:
        frac = max(step / steps, (time.time() - t0) / budget if budget > 0 else 0.0)
        if frac >= 1.0:
            break
        scale = min(1.0, (step + 1) / 100) * 0.5 * (1 + np.cos(np.pi * frac))
        for g in opt.param_groups:
            g["lr"] = lr * max(scale, 0.02)
        xs, ys, ws = zip(*(sample() for _ in range(batch)), strict=True)
        x, y, w = (torch.from_numpy(np.stack(a)) for a in (xs, ys, ws))
        pred = net(x) + (x[:, IN_CHANNELS:] if residual else 0.0)
        err = (pred - y).square() if loss == "mse" else torch.abs(pred - y)
        objective = (err * w).sum() / w.sum().clamp_min(1.0)
        opt.zero_grad(set_to_none=True)
        objective.backward()
        opt.step()
        decay = min(0.998, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pn in zip(ema.parameters(), net.parameters(), strict=True):
                pe.mul_(decay).add_(pn.detach(), alpha=1 - decay)
            for be, bn in zip(ema.buffers(), net.buffers(), strict=True):
                be.copy_(bn)
        value = float(objective.detach())
        running = value if running is None else 0.98 * running + 0.02 * value
        step += 1
        if step % 50 == 0:
            log(
                f"step {step} loss {running:.4f} lr {opt.param_groups[0]['lr']:.2e} "
                f"{(time.time() - t0) / 60:.1f} min"
            )
    ema.eval()
    info = {
        "steps": step,
        "minutes": round((time.time() - t0) / 60, 1),
        "final_loss": round(running or 0, 4),
        "patch": patch,
        "batch": batch,
        "seed": seed,
        "features": list(FEATURES),
        "residual": residual,
        "loss": loss,
        "lr": lr,
    }
    return ema, info


def save_weights(net: torch.nn.Module, path: Path) -> str:
    """Write float32 safetensors; returns the sha256."""
    from safetensors.torch import save_file

    from napari_brain_dl.core.models.loaders import sha256_file

    save_file({k: v.detach().float().contiguous() for k, v in net.state_dict().items()}, str(path))
    return sha256_file(path)


def reference_quantiles(subjects: list[sd.Subject]) -> dict[str, list[float]]:
    """Mean over subjects of each target's 101 in-brain quantiles (the histogram baseline's reference)."""
    from napari_brain_dl.core.tasks.synthesize import brain_quantiles

    out = {}
    for t in TARGETS:
        qs = [brain_quantiles(s.images[t], s.images[t] != 0) for s in subjects if t in s.images]
        out[t] = [round(float(q), 4) for q in np.mean(qs, axis=0)]
    return out


def write_card(
    out: Path,
    info: dict[str, Any],
    subjects: list[sd.Subject],
    command: str,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """The ``synth-mri`` card next to its weights (metrics kept from an existing card if not given)."""
    path = out / CARD_FILE
    old = yaml.safe_load(path.read_text()) if path.is_file() else {}
    card: dict[str, Any] = {
        "id": MODEL_ID,
        "name": "Contrast synthesis: T1, T2 or FLAIR from any present contrasts (3D U-Net)",
        "task": "synthesis",
        "description": (
            "SYNTHETIC T1, T2 or FLAIR computed from whichever of T1, T1c, T2 and FLAIR are present, on "
            "skull-stripped, co-registered brain MRI. The result is not an acquired scan: it can hide or "
            "invent lesions. Output intensity scale: z-score of the target contrast inside the brain "
            "(mean 0, sd 1 over brain voxels as in the training scans), the lowest brain value outside "
            "the sources' foreground. T1c is never synthesised."
        ),
        "inputs": list(CONTRASTS),
        "spacing": SPACING,
        "preprocessing": [{"op": "zscore_foreground"}],
        "postprocessing": [],
        "output": {
            "kind": "image",
            "targets": list(TARGETS),
            "synthetic": True,
            "units": "z-score of the target inside the brain",
            "reference_quantiles": reference_quantiles(subjects),
        },
        "aliases": ["synth-flair-from-t1c", "synth-t2-from-t1"],
        "architecture": {
            "type": "project",
            "name": "unet",
            "in_channels": IN_CHANNELS + (len(TARGETS) if info["residual"] else 0),
            "out_channels": len(TARGETS),
            "features": list(FEATURES),
            "residual": info["residual"],
        },
        "weights": {"file": WEIGHTS_FILE, "sha256": info["sha256"], "format": "safetensors"},
        "trusted": True,
        "inference": {"mode": "whole", "crop": "head", "flips": True},
        "license": (
            "Weights trained by this project on BraTS-derived data (brats2015_flair_t1c: CC BY-NC-SA 3.0 CH; "
            "BraTS 2018/2020/2023 and TCGA cases: research use, cite the BraTS papers; brats18_flair_t1_wt "
            "via deepvoxnet2). Non-commercial research use only; the project's code licence does not apply."
        ),
        "intended_use": "Research only: never for diagnosis, never in place of an acquired scan.",
        "source": (
            f"Trained by napari-brain-dl: {command} (seed {info['seed']}) on "
            f"{'; '.join(s.name for s in subjects)}. {info['steps']} steps (batch {info['batch']} of "
            f"{info['patch']}^3 patches at {SPACING:g} mm), {info['minutes']} minutes on 1 thread of "
            f"{cpu_name()}, no GPU, torch {torch.__version__}."
        ),
        "training": {
            "command": command,
            "seed": info["seed"],
            "steps": info["steps"],
            "minutes": info["minutes"],
            "subjects": [s.name for s in subjects],
            **({"stages": info["stages"]} if "stages" in info else {}),
        },
        "metrics": metrics if metrics is not None else old.get("metrics", {}),
    }
    header = (
        f"# Model card: {card['name']}.\n"
        "# Written by scripts/train_synthesis.py; the shipped weights came from:\n"
        f"#   {command}\n"
    )
    path.write_text(header + yaml.safe_dump(card, sort_keys=False, width=110, default_flow_style=None))
    return path


def after_first_stage(first_card: Path, info: dict[str, Any], command: str) -> str:
    """A second stage's command chained after the first stage's (from its card, if any); `info`
    gets the list of stages and their summed steps and minutes."""
    run = yaml.safe_load(first_card.read_text())["training"] if first_card.is_file() else {}
    stage = {k: info[k] for k in ("steps", "minutes", "loss", "lr")}
    info["stages"] = [*run.get("stages", [{k: run[k] for k in ("steps", "minutes") if k in run}]), stage]
    info["steps"] = sum(int(st.get("steps", 0)) for st in info["stages"])
    info["minutes"] = round(sum(float(st.get("minutes", 0)) for st in info["stages"]), 1)
    return " && ".join(filter(None, [run.get("command"), command]))


def main(argv: list[str] | None = None) -> int:
    """Train on every subject (or all but ``--holdout`` fold) and write weights + card."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=14.0)
    ap.add_argument("--steps", type=int, default=100000)
    ap.add_argument("--patch", type=int, default=32)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--residual",
        action="store_true",
        help="learn a correction of histogram matching (tried: worse at this budget)",
    )
    ap.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    ap.add_argument("--loss", choices=("l1", "mse"), default="l1")
    ap.add_argument("--init", type=Path, default=None, help="start from these weights (a second stage)")
    ap.add_argument("--holdout", type=int, default=None, help="leave this fold of synth_data.FOLDS out")
    ap.add_argument("--out", type=Path, default=ROOT / "resources" / "models")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    held = sd.FOLDS[args.holdout] if args.holdout is not None else []
    subjects = [sd.load_subject(n) for n in sd.SUBJECTS if n not in held]
    print(f"training on {len(subjects)} subjects, holding out {held}", flush=True)
    net, info = train(
        subjects,
        minutes=args.minutes,
        steps=args.steps,
        patch=args.patch,
        batch=args.batch,
        seed=args.seed,
        lr=args.lr,
        residual=args.residual,
        loss=args.loss,
        init=args.init,
        log=lambda s: print(s, flush=True),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    info["sha256"] = save_weights(net, args.out / WEIGHTS_FILE)
    command = "OMP_NUM_THREADS=1 python scripts/train_synthesis.py " + " ".join(argv or sys.argv[1:])
    if args.init is not None:
        command = after_first_stage(args.init.with_suffix(".yaml"), info, command)
    print(write_card(args.out, info, subjects, command), info, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
