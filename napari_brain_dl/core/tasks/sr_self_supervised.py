"""The self-supervised (SMORE-like) super-resolution method, with its held-out self-check.

The in-plane slices have high resolution. They are degraded along one in-plane axis with the
acquisition's slice profile and B-spline-upsampled back; a per-scan model (`..models.srnet`:
adaptive filters fitted in closed form, then a small residual 2D CNN) learns to undo that, for
both in-plane axes, and is applied through-plane. Some acquired slices are held out of the
training (`.sr_check`): the learnt part is scored against B-spline on them, the CNN keeps the
weights of its best check (and stops once checks stop improving), and the weight of the learnt
part in a blend with B-spline is chosen there, so the held-out score is never below B-spline.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from typing import Any

import numpy as np

from ..progress import CancelToken, ProgressCallback, check
from ..volume import Volume
from .slice_profile import bspline_resample_index, degrade_axis, mirror_slices
from .sr_check import FOREGROUND, SelfCheck, gain_db, held_out_slices, self_check

Grid = tuple[tuple[int, int, int], np.ndarray]
Pair = tuple[np.ndarray, np.ndarray, np.ndarray]


def scaled_grid(volume: Volume, steps: list[float]) -> Grid:
    """Grid whose voxel steps are `steps` input voxels, centred on the input's extent."""
    shape = tuple(max(1, round(n / r)) for n, r in zip(volume.shape, steps, strict=True))
    index = np.eye(4)
    for a, (n, m, r) in enumerate(zip(volume.shape, shape, steps, strict=True)):
        index[a, a] = r
        index[a, 3] = (n - 1) / 2 - (m - 1) / 2 * r
    return shape, volume.affine @ index  # type: ignore[return-value]


def self_supervised(volume: Volume, *, z: int, thickness: float, device: str, seed: int,
                    settings: Any, report: ProgressCallback, cancel: CancelToken | None,
                    ) -> tuple[Volume | None, SelfCheck, dict[str, Any]]:
    """Train the per-scan model on in-plane slices, check it on held-out ones, apply it through-plane.

    Returns:
        The learnt result on the network grid (in-plane axes unchanged, through-plane at the
        in-plane spacing; None when the self-check gave it no weight, so nothing was inferred),
        the self-check, and provenance entries.
    """
    from ..device import choose_device
    from ..models.srnet import SRSettings, apply_filter_bank, apply_srnet, fit_filter_bank, train_srnet

    cfg = settings if settings is not None else SRSettings()
    torch_device = choose_device(device)
    a1, a2 = (a for a in range(3) if a != z)
    sp = volume.spacing
    fine = (sp[a1] + sp[a2]) / 2
    x = np.asarray(volume.data, np.float32)
    scale = float(np.percentile(x, 99.5)) or float(np.abs(x).max()) or 1.0
    x = x / scale
    # network grid: in-plane axes unchanged, through-plane at the in-plane resolution
    steps = [1.0, 1.0, 1.0]
    steps[z] = fine / sp[z]
    net_grid = scaled_grid(volume, steps)
    z_start = (volume.shape[z] - 1) / 2 - (net_grid[0][z] - 1) / 2 * steps[z]
    ratio = sp[z] / fine  # thick-slice spacing in network-grid voxels
    phase = (-z_start / steps[z]) % ratio  # where the acquired slices fall on that grid

    level = FOREGROUND * max(float(np.percentile(x, 99)), 1e-12)
    # receptive field in pixels along the blurred axis (filters, then the CNN's 3x3 layers)
    reach = cfg.filter_stages * (cfg.filter_rows // 2) + (cfg.layers if cfg.steps else 0) + 1
    held = held_out_slices(x, z)
    keep = np.setdiff1d(np.arange(volume.shape[z]), held)
    batches = [math.ceil(volume.shape[a] / 4) if cfg.steps else 0 for a in (a1, a2)]
    stages = cfg.filter_stages
    variants = _variants(cfg)  # through-plane passes per orientation: the image and its flips
    passes = len(variants)
    total = 1 + 2 * stages + cfg.steps + passes * (2 * stages + sum(batches)) + 1
    report(0, total, "training on in-plane slices")
    pairs: list[Pair] = []
    tests: list[Pair] = []
    for a, b in ((a1, a2), (a2, a1)):
        check(cancel)
        first, every = phase * fine / sp[a], sp[z] / sp[a]  # thick-slice centres, in voxels of axis a
        low = np.moveaxis(degrade_axis(x, a, thickness=thickness / sp[a], spacing=every, start=first),
                          (z, a, b), (0, 1, 2))
        sharp = np.moveaxis(x, (z, a, b), (0, 1, 2))
        rows = ((np.arange(volume.shape[a]) - first) / every) % 1.0
        box = _foreground_box(sharp, margin=reach, level=level)  # in-plane slices: the head only
        box = (slice(None), *box[1:])
        low, sharp, rows = low[box], sharp[box], rows[box[1]]
        pairs.append((low[keep], sharp[keep], rows))
        tests.append((low[held], sharp[held], rows))
    # As through-plane, where both orientations' results are averaged, the self-check scores the
    # mean of the held-out slices' two results (blurred along one in-plane axis, then the other).
    base = _fuse([lo for lo, _, _ in tests])  # B-spline of the held-out slices
    targets = [tests[0][1]]
    masks = [targets[0] > level]
    # the held-out slices' flipped copies go through every stage beside them
    flipped = []
    for v in variants:
        for lo, hi, ph in tests:
            lo_v, ph_v = _flip(lo, ph, v)
            flipped.append((lo_v, hi, ph_v))
    tests = flipped
    report(1, total, "fitting filters on in-plane slices")
    t0 = time.perf_counter()
    banks = []
    for stage in range(stages):  # each stage refines the previous one's output
        banks.append(fit_filter_bank(pairs, settings=cfg, seed=seed + stage, cancel=cancel))
        report(2 + 2 * stage, total, f"training: filters {stage + 1}/{stages} fitted")
        if cfg.steps or stage + 1 < stages:
            pairs = [(apply_filter_bank(banks[-1], lo, ph, cancel=cancel), hi, ph) for lo, hi, ph in pairs]
        tests = [(apply_filter_bank(banks[-1], lo, ph, cancel=cancel), hi, ph) for lo, hi, ph in tests]
        report(3 + 2 * stage, total, "training on in-plane slices")
    filtered = _merge([lo for lo, _, _ in tests], variants)
    history = [(0, gain_db(base, filtered, targets, masks))]
    done = 1 + 2 * stages
    net, cnn_steps = None, 0
    if cfg.steps and len(held):
        def monitor(candidate: Any, step: int) -> float:
            out = _merge([apply_srnet(candidate, lo, ph, device=torch_device) for lo, _, ph in tests],
                         variants)
            history.append((step, gain_db(base, out, targets, masks)))
            return history[-1][1]

        net, cnn_steps = train_srnet(
            pairs, settings=cfg, device=torch_device, seed=seed, cancel=cancel, monitor=monitor,
            check_every=cfg.check_every, patience=cfg.patience, min_gain=cfg.min_gain_db,
            baseline=history[0][1],
            step_done=lambda s: report(done + s, total, f"training step {s}/{cfg.steps}"))
        if cnn_steps == 0:  # no check beat the filters alone: leave the CNN out
            net = None
    elif cfg.steps:  # too few slices to hold any out: train without a check
        net, cnn_steps = train_srnet(pairs, settings=cfg, device=torch_device, seed=seed, cancel=cancel)
    train_s = time.perf_counter() - t0
    del pairs
    learnt = filtered if net is None else _merge([apply_srnet(net, lo, ph, device=torch_device)
                                                  for lo, _, ph in tests], variants)
    result = self_check(held, base, learnt, targets, masks, history=history, cnn_steps=cnn_steps)
    if not len(held):  # nothing to check on: keep the learnt result
        result.weight = 1.0
    prov = {"settings": asdict(cfg), "device": str(torch_device), "training_seconds": round(train_s, 2),
            "network_grid": _grid_info(*net_grid)}
    done += cfg.steps
    if result.weight <= 0:
        report(total - 1, total, "the self-check chose B-spline")
        return None, result, prov

    # Beyond the first and last acquired slices the filters would see a flat extrapolation they never
    # learnt (it made spikes where a scan's edge cuts through the head); mirrored slices look natural.
    t1 = time.perf_counter()
    pad = min(volume.shape[z], math.ceil(reach * steps[z]))  # in acquired slices
    extra = round(pad / steps[z])  # in network-grid rows; `start` puts row `extra` on output row 0 exactly
    padded = mirror_slices(x, z, pad)
    shape = list(net_grid[0])
    shape[z] += 2 * extra
    start = z_start + pad - extra * steps[z]
    up = bspline_resample_index(padded, [0.0 if a != z else start for a in range(3)], steps, shape)
    box = _foreground_box(up, margin=cfg.layers + 2)
    crop = up[box]
    rows = ((start - pad + steps[z] * np.arange(shape[z])) % 1.0)[box[z]]  # phase on the acquired slices
    fused = np.zeros_like(crop)
    runs = [(a, b, v) for a, b in ((a1, a2), (a2, a1)) for v in variants]
    for k, (a, b, v) in enumerate(runs):
        # H = through-plane, W = the other in-plane axis; flipped as `v` says, and back below
        stack, phase = _flip(np.moveaxis(crop, (a, z, b), (0, 1, 2)), rows, v)
        offset = done + k * stages + sum(batches[i // passes] for i in range(k))

        def batch_done(n: int, o: int = offset + stages) -> None:
            report(o + math.ceil(n / 4), total, "sharpening through-plane slices")

        out = stack
        for j, bank in enumerate(banks):
            out = apply_filter_bank(bank, out, phase, cancel=cancel)
            report(offset + j + 1, total, f"sharpening through-plane slices ({k + 1}/{len(runs)})")
        if net is not None:
            out = apply_srnet(net, out, phase, device=torch_device, cancel=cancel, batch_done=batch_done)
        fused += np.moveaxis(_flip_stack(out, v), (0, 1, 2), (a, z, b)) / passes
    up[box] = fused / 2
    up = np.take(up, np.arange(extra, extra + net_grid[0][z]), axis=z)
    prov["inference_seconds"] = round(time.perf_counter() - t1, 2)
    report(total - 1, total, "resampling to the isotropic grid")
    return Volume(up * scale, net_grid[1]), result, prov


Variant = tuple[bool, bool]


def _variants(cfg: Any) -> list[Variant]:
    """(reverse H, mirror W) for each pass: the image itself first, then its flips."""
    return [(h, w) for h in (False, True)[: 1 + bool(cfg.reverse)]
            for w in (False, True)[: 1 + bool(cfg.mirror)]]


def _flip_stack(stack: np.ndarray, variant: Variant) -> np.ndarray:
    """`stack` (slices, H, W) flipped along H and / or W; its own inverse, so it also flips back."""
    reverse, mirror = variant
    return stack[:, ::-1 if reverse else 1, ::-1 if mirror else 1]


def _flip(stack: np.ndarray, phase: np.ndarray, variant: Variant) -> tuple[np.ndarray, np.ndarray]:
    """`stack` flipped (`_flip_stack`) with the phases of its H rows: read upside down, a row at
    phase f after an acquired slice sits at 1 - f before it."""
    return _flip_stack(stack, variant), ((-phase[::-1]) % 1.0 if variant[0] else phase)


def _merge(stacks: list[np.ndarray], variants: list[Variant]) -> list[np.ndarray]:
    """The held-out slices' result: each orientation's mean over `variants`, flipped back, then
    fused (`_fuse`). `stacks` holds the two orientations for each variant in turn."""
    means = [sum(_flip_stack(stacks[2 * i + o], v) for i, v in enumerate(variants)) / len(variants)
             for o in range(2)]
    return _fuse(means)


def _fuse(stacks: list[np.ndarray]) -> list[np.ndarray]:
    """Mean of a held-out stack's two results: (slices, a1, a2) and (slices, a2, a1)."""
    return [(stacks[0] + stacks[1].transpose(0, 2, 1)) / 2]


def _foreground_box(data: np.ndarray, margin: int, level: float | None = None) -> tuple[slice, ...]:
    """Bounding box of voxels above `level` (default 2 % of the 99th percentile), grown by `margin`."""
    fg = data > (0.02 * max(float(np.percentile(data, 99)), 1e-6) if level is None else level)
    if not fg.any():
        return tuple(slice(0, n) for n in data.shape)
    box = []
    for a in range(3):
        idx = np.flatnonzero(fg.any(axis=tuple(b for b in range(3) if b != a)))
        box.append(slice(max(0, idx[0] - margin), min(data.shape[a], idx[-1] + margin + 1)))
    return tuple(box)


def _grid_info(shape: tuple[int, ...], affine: np.ndarray) -> dict[str, Any]:
    v = Volume(np.empty((1, 1, 1), np.uint8), affine)
    return {"shape": list(shape), "spacing": [round(s, 6) for s in v.spacing], "axcodes": v.axcodes,
            "affine": np.asarray(affine).tolist()}
