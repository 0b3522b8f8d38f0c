"""Per-scan models for self-supervised super-resolution (SMORE-like): filters, then a 2D CNN.

Stage 1 is a bank of adaptive 2D filters (RAISR-like) fitted in closed form (ridge least squares)
on the scan's own degraded in-plane slices: one filter per bucket of sampling phase x local
gradient angle x gradient strength. It is exact, deterministic and takes seconds, where a CNN on
2 CPU cores needs far more steps than a few minutes allow to learn the same linear part.
Stage 2, a small residual CNN, learns what is left. The CNN sees a B-spline-upsampled, filtered
slice whose first image axis (H) is blurred by thick slices and whose second axis (W) has full
resolution, and predicts the missing detail (a residual added to its input). Both are trained on
the scan's own in-plane slices, degraded along one in-plane axis with the acquisition's slice
profile, and applied to the slices that contain the through-plane axis.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..progress import CancelToken, check


@dataclass(frozen=True)
class SRSettings:
    """Filter bank, training budget and network size of the self-supervised method.

    Fixed for every scan (no per-scan tuning). Filters span `filter_rows` x `filter_cols` pixels
    (rows along the blurred axis), fitted on up to `samples` foreground pixels per direction;
    `filter_stages` banks run in cascade, each fitted on the previous one's output. The
    defaults were chosen on a development scan only (brainchop t1_crop, 4x thick slices along
    two axes; bench/README.md): from 2 stages of 17x3 filters, 4 angles and 400k samples
    (+0.95 / +1.51 dB over B-spline) to these (+1.21 / +1.85 dB).

    `steps` is the CNN's training budget (batches of `batch` patches of `patch` pixels), the
    same on every device (no time-based stopping). Chosen on the development scan's axial run,
    gain over B-spline inside the brain / head: filters alone +0.80 / +1.21 dB; then a 6-layer,
    24-channel CNN: 800 steps +1.10 / +1.24, 1500 steps +1.28 / +1.39 (the default), 3000 steps
    of 48-pixel patches +1.31 / +1.41; 8 layers, 32 channels, 1500 steps +1.37 / +1.35 at twice
    the time. (With plain ReLUs the net could die: 800 steps once scored exactly as no CNN.)

    The CNN is scored on held-out in-plane slices every `check_every` steps (`..tasks.sr_check`);
    the best check's weights are kept, and training stops once `patience` (> 0) checks in a row
    gained less than `min_gain_db` over the best (at first: the filters alone). On the full t1n
    (4x thick axial slices) the checks read +1.63 dB (filters), then +1.47, +1.63, +1.63, +1.74,
    +1.74, +1.76 every 250 steps: the one-cycle schedule's gains come late, so patience 2 stopped
    a useful CNN at 500 steps (through-plane +1.41 instead of +1.86 dB). With 2 threads no check
    of that scan beats the filters, even over all 1500 steps (patience 0: +1.49 dB, as with 4).

    `mirror` averages each slice's result with that of its mirror image (flipped along the
    sharp in-plane axis, which leaves the slice profile and its phase unchanged) and flips back:
    a second pass of filters and CNN, used by the self-check too. Chosen on the development
    scan's axial run, by a rule written before the run: +1.24 dB without, +1.28 dB with
    (SSIM 0.8665 / 0.8676), 331 / 365 s on one thread. `reverse` adds the slices read upside
    down along the through-plane axis (their phases mirrored too, as in training): two more
    passes, chosen the same way (+1.30 dB, SSIM 0.8685). A 240x240x38 scan then takes 163-202 s
    on 2 idle cores (120-130 s with one pass).
    """

    filter_stages: int = 4
    filter_rows: int = 17
    filter_cols: int = 7
    phases: int = 8
    angles: int = 8
    strengths: int = 2
    ridge: float = 1e-5
    samples: int = 1_200_000
    layers: int = 6
    channels: int = 24
    steps: int = 1500
    batch: int = 16
    patch: int = 64
    lr: float = 2e-3
    foreground_fraction: float = 1.0
    check_every: int = 250
    patience: int = 4
    min_gain_db: float = 0.02
    mirror: bool = True
    reverse: bool = True


#: Negative slope of the network's activations.
LEAK = 0.1


class SRNet(nn.Module):
    """Residual CNN: ``y = x + f(x, cos 2πφ, sin 2πφ)`` with `layers` 3x3 convolutions.

    φ is the sampling phase along H: where each row lies between two acquired thick slices
    (0 on a slice centre). It tells the network where interpolation, not measurement, filled in.

    Example:
        >>> SRNet(layers=4, channels=8)(torch.zeros(1, 3, 16, 16)).shape
        torch.Size([1, 1, 16, 16])
    """

    def __init__(self, layers: int = 6, channels: int = 24) -> None:
        super().__init__()
        # Leaky: with plain ReLUs the net sometimes died early in training (all units off, the output
        # exactly its input: 800 steps scored the same as none on the development scan).
        mods: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1), nn.LeakyReLU(LEAK, inplace=True)]
        for _ in range(layers - 2):
            mods += [nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(LEAK, inplace=True)]
        mods.append(nn.Conv2d(channels, 1, 3, padding=1))
        self.body = nn.Sequential(*mods)
        for mod in mods:  # He initialisation keeps the signal alive through the stack
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, a=LEAK, nonlinearity="leaky_relu")
                nn.init.zeros_(mod.bias)
        nn.init.normal_(mods[-1].weight, std=1e-3)  # starts close to the identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Add the predicted detail to channel 0 of `x` (N, 3, H, W: image, cos, sin of the phase)."""
        return x[:, :1] + self.body(x)


def with_phase(images: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """Stack (N, H, W) images with their (N, H) sampling phases as (N, 3, H, W) network input."""
    angle = (2 * torch.pi * phase)[:, :, None].expand_as(images)
    return torch.stack([images, torch.cos(angle), torch.sin(angle)], dim=1)


def _patch_corners(fg: np.ndarray, count: int, patch: tuple[int, int], frac: float,
                   rng: np.random.Generator) -> np.ndarray:
    """(count, 3) corners (slice, row, col) of patches, most centred on foreground pixels."""
    n, h, w = fg.shape
    ph, pw = patch
    corners = np.stack([rng.integers(0, n, count), rng.integers(0, h - ph + 1, count),
                        rng.integers(0, w - pw + 1, count)], axis=1)
    fg_idx = np.flatnonzero(fg)
    use_fg = rng.random(count) < frac
    if fg_idx.size and use_fg.any():
        pick = np.array(np.unravel_index(rng.choice(fg_idx, int(use_fg.sum())), fg.shape)).T
        pick[:, 1] = np.clip(pick[:, 1] - ph // 2, 0, h - ph)
        pick[:, 2] = np.clip(pick[:, 2] - pw // 2, 0, w - pw)
        corners[use_fg] = pick
    return corners


def train_srnet(
    pairs: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    settings: SRSettings,
    device: torch.device,
    seed: int = 0,
    step_done: Callable[[int], None] | None = None,
    cancel: CancelToken | None = None,
    monitor: Callable[[SRNet, int], float] | None = None,
    check_every: int = 250,
    patience: int = 0,
    min_gain: float = 0.0,
    baseline: float = -math.inf,
) -> tuple[SRNet, int]:
    """Train an `SRNet` on (degraded, sharp, phase) stacks of 2D slices, shaped (slices, H, W).

    The blurred axis of every pair is H; phase (length H) is the sampling phase of each row.
    Patches are drawn mostly around foreground pixels (above 10 % of the sharp stack's 99th
    percentile), with random flips; MSE loss, Adam with a one-cycle learning-rate schedule.
    Deterministic given `seed` (and the thread count).

    With `monitor` (a score of the network after a number of steps, higher is better, e.g. its
    gain on held-out slices) the network is scored every `check_every` steps and at the end;
    the best-scoring weights are returned with their step count (0 when no check beat
    `baseline`, the score without the network). Training stops early once `patience` (> 0)
    checks in a row improved the best score (at first `baseline`) by less than `min_gain`.

    Returns:
        The network in eval mode and the number of steps its weights were trained for.

    Example:
        >>> x = np.random.default_rng(0).random((2, 16, 16)).astype(np.float32)
        >>> tiny = SRSettings(layers=3, channels=4, steps=2, batch=2, patch=8)
        >>> net, steps = train_srnet([(x, x, np.zeros(16))], settings=tiny, device=torch.device("cpu"))
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = SRNet(settings.layers, settings.channels).to(device)
    fmt = torch.channels_last if device.type == "cpu" else torch.contiguous_format  # ~25 % faster on CPU
    net = net.to(memory_format=fmt)
    opt = torch.optim.Adam(net.parameters(), lr=settings.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, settings.lr, total_steps=max(1, settings.steps),
                                                pct_start=0.1)
    stacks = [(torch.from_numpy(np.ascontiguousarray(lo, np.float32)),
               torch.from_numpy(np.ascontiguousarray(hi, np.float32)),
               torch.from_numpy(np.asarray(ph, np.float32))) for lo, hi, ph in pairs]
    fgs = [hi.numpy() > 0.1 * max(float(np.percentile(hi.numpy(), 99)), 1e-6) for _, hi, _ in stacks]
    best: tuple[float, int, dict[str, torch.Tensor] | None] = (baseline, 0, None)
    stale = 0
    for step in range(settings.steps):
        check(cancel)
        which = rng.integers(0, len(stacks), settings.batch)
        xs, ys, ps = [], [], []
        for k in range(len(stacks)):
            count = int((which == k).sum())
            if not count:
                continue
            lo, hi, ph = stacks[k]
            patch = (min(settings.patch, lo.shape[1]), min(settings.patch, lo.shape[2]))
            for s, r, c in _patch_corners(fgs[k], count, patch, settings.foreground_fraction, rng):
                x = lo[s, r:r + patch[0], c:c + patch[1]]
                y = hi[s, r:r + patch[0], c:c + patch[1]]
                p = ph[r:r + patch[0]]
                flips = [d for d, f in zip((0, 1), rng.random(2) < 0.5, strict=True) if f]
                if flips:  # the phase rows move with the image rows; mirrored, a phase φ becomes -φ
                    x, y = x.flip(flips), y.flip(flips)
                    p = torch.remainder(-p.flip(0), 1.0) if 0 in flips else p
                xs.append(x)
                ys.append(y)
                ps.append(p)
        if len({tuple(x.shape) for x in xs}) > 1:  # stacks of different sizes: common crop
            h = min(x.shape[0] for x in xs)
            w = min(x.shape[1] for x in xs)
            xs, ys, ps = [x[:h, :w] for x in xs], [y[:h, :w] for y in ys], [p[:h] for p in ps]
        xb = with_phase(torch.stack(xs), torch.stack(ps)).to(device).contiguous(memory_format=fmt)
        yb = torch.stack(ys)[:, None].to(device).contiguous(memory_format=fmt)
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(net(xb), yb)
        loss.backward()
        opt.step()
        sched.step()
        if step_done is not None:
            step_done(step + 1)
        if monitor is not None and ((step + 1) % check_every == 0 or step + 1 == settings.steps):
            score = monitor(net.eval(), step + 1)
            net.train()
            stale = stale + 1 if score < best[0] + min_gain else 0
            if score > best[0]:
                best = (score, step + 1, {k: v.detach().clone() for k, v in net.state_dict().items()})
            if patience and stale >= patience:
                break
    if best[2] is not None:
        net.load_state_dict(best[2])
        return net.eval(), best[1]
    return net.eval(), 0 if monitor is not None else settings.steps


@torch.inference_mode()
def apply_srnet(
    net: SRNet,
    stack: np.ndarray,
    phase: np.ndarray,
    *,
    device: torch.device,
    batch: int = 4,
    batch_done: Callable[[int], None] | None = None,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """Run `net` on every slice of `stack` (slices, H, W), H being the blurred axis with `phase`.

    Example:
        >>> apply_srnet(SRNet(3, 4), np.ones((2, 8, 8), np.float32), np.zeros(8),
        ...             device=torch.device("cpu")).shape
        (2, 8, 8)
    """
    out = np.empty(stack.shape, np.float32)
    rows = torch.from_numpy(np.asarray(phase, np.float32))
    for begin in range(0, stack.shape[0], batch):
        check(cancel)
        images = torch.from_numpy(np.ascontiguousarray(stack[begin:begin + batch], np.float32))
        x = with_phase(images, rows[None].expand(images.shape[0], -1)).to(device)
        if device.type == "cpu":  # the network's weights are channels-last on CPU (trained so)
            x = x.contiguous(memory_format=torch.channels_last)
        out[begin:begin + batch] = net(x)[:, 0].float().cpu().numpy()
        if batch_done is not None:
            batch_done(min(stack.shape[0], begin + batch))
    return out


@dataclass
class FilterBank:
    """Adaptive filters: ``weights[bucket]`` maps a pixel's window (+1 for the bias) to its detail."""

    weights: np.ndarray
    edges: np.ndarray
    settings: SRSettings


def _buckets(stack: np.ndarray, phase: np.ndarray, cfg: SRSettings, edges: np.ndarray | None,
             ) -> tuple[np.ndarray, np.ndarray]:
    """Bucket of every pixel: phase bin x gradient-angle bin x gradient-strength bin."""
    from scipy import ndimage

    gh = ndimage.gaussian_filter(stack, (0, 1, 1), order=(0, 1, 0))
    gw = ndimage.gaussian_filter(stack, (0, 1, 1), order=(0, 0, 1))
    angle = np.mod(np.arctan2(gh, gw), np.pi)
    ai = np.minimum((angle / np.pi * cfg.angles).astype(np.int64), cfg.angles - 1)
    strength = np.hypot(gh, gw)
    if edges is None:
        fg = stack > 0.05
        edges = np.quantile(strength[fg] if fg.any() else strength,
                            np.linspace(0, 1, cfg.strengths + 1)[1:-1])
    si = np.searchsorted(edges, strength)
    pb = (np.floor(np.asarray(phase) * cfg.phases + 0.5).astype(np.int64) % cfg.phases)[None, :, None]
    return (pb * cfg.angles + ai) * cfg.strengths + si, edges


def _padded(stack: np.ndarray, cfg: SRSettings) -> np.ndarray:
    kh, kw = cfg.filter_rows // 2, cfg.filter_cols // 2
    return np.pad(stack, ((0, 0), (kh, kh), (kw, kw)), mode="reflect")


def fit_filter_bank(pairs: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], *, settings: SRSettings,
                    seed: int = 0, cancel: CancelToken | None = None) -> FilterBank:
    """Fit one ridge-regression filter per bucket mapping degraded windows to the missing detail.

    Example:
        >>> x = np.random.default_rng(0).random((2, 24, 24)).astype(np.float32)
        >>> fit_filter_bank([(x, x, np.zeros(24))], settings=SRSettings()).weights.shape
        (128, 120)
    """
    cfg = settings
    rng = np.random.default_rng(seed)
    count = cfg.phases * cfg.angles * cfg.strengths
    nf = cfg.filter_rows * cfg.filter_cols + 1
    gram = np.zeros((count, nf, nf))
    rhs = np.zeros((count, nf))
    edges = None
    dh, dw = np.meshgrid(np.arange(cfg.filter_rows), np.arange(cfg.filter_cols), indexing="ij")
    for lo, hi, phase in pairs:
        check(cancel)
        buckets, edges = _buckets(lo, phase, cfg, edges)
        buckets = np.broadcast_to(buckets, lo.shape)
        fg = np.flatnonzero(hi > 0.05 * max(float(np.percentile(hi, 99)), 1e-6))
        pick = rng.choice(fg, min(cfg.samples, fg.size), replace=False) if fg.size else fg
        padded = _padded(lo, cfg)
        for chunk in np.array_split(np.sort(pick), max(1, math.ceil(pick.size / 200_000))):
            s, h, w = np.unravel_index(chunk, lo.shape)  # chunks bound the memory of the windows
            win = padded[s[:, None, None], h[:, None, None] + dh, w[:, None, None] + dw]
            feats = np.concatenate([win.reshape(len(s), -1), np.ones((len(s), 1), np.float32)], 1)
            feats = feats.astype(np.float64)
            target = (hi[s, h, w] - lo[s, h, w]).astype(np.float64)
            order = np.argsort(buckets[s, h, w], kind="stable")  # one bucket after the other
            feats, target = feats[order], target[order]
            bounds = np.searchsorted(buckets[s, h, w][order], np.arange(count + 1))
            for k in np.flatnonzero(np.diff(bounds)):
                check(cancel)
                f = feats[bounds[k]:bounds[k + 1]]
                gram[k] += f.T @ f
                rhs[k] += f.T @ target[bounds[k]:bounds[k + 1]]
    ridge = cfg.ridge * max(np.trace(gram.sum(0)) / nf / count, 1e-12)
    weights = np.stack([np.linalg.solve(gram[k] + ridge * np.eye(nf), rhs[k]) for k in range(count)])
    return FilterBank(weights.astype(np.float32), np.asarray(edges), cfg)


def apply_filter_bank(bank: FilterBank, stack: np.ndarray, phase: np.ndarray, *, chunk: int = 4,
                      cancel: CancelToken | None = None) -> np.ndarray:
    """Add each pixel's filtered detail to `stack` (slices, H, W; H the blurred axis with `phase`).

    Example:
        >>> x = np.random.default_rng(0).random((2, 24, 24)).astype(np.float32)
        >>> bank = fit_filter_bank([(x, x, np.zeros(24))], settings=SRSettings())
        >>> apply_filter_bank(bank, x, np.zeros(24)).shape
        (2, 24, 24)
    """

    cfg = bank.settings
    taps = np.ascontiguousarray(bank.weights.T)  # one row per filter tap, the bias last
    out = np.empty(stack.shape, np.float32)
    for begin in range(0, stack.shape[0], chunk):
        check(cancel)
        part = np.asarray(stack[begin:begin + chunk], np.float32)
        buckets, _ = _buckets(part, phase, cfg, bank.edges)
        buckets = np.broadcast_to(buckets, part.shape)
        padded = _padded(part, cfg)
        h, w = part.shape[1:]
        detail = taps[-1][buckets]  # the bias, then one filter tap at a time
        for i in range(cfg.filter_rows):
            for j in range(cfg.filter_cols):
                detail += padded[:, i:i + h, j:j + w] * taps[i * cfg.filter_cols + j][buckets]
        out[begin:begin + chunk] = part + detail
    return out
