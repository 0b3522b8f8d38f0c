"""The multi-contrast synthesis network ``synth-mri``: any present contrasts in, T1 / T2 / FLAIR out.

Input channels (8): the four contrasts in `CONTRASTS` order, each z-scored inside its own
foreground (`prepost.zscore_foreground`: mean 0, sd 1 over the brain, so raw integers,
z-scored and float scans of the same exam give the same input), a missing contrast being an
all-zero image; then four availability flags (1 = present, 0 = missing) as constant images.
With a residual card (``architecture.residual: true``, 11 input channels) three more channels
hold, per target, a histogram-matched source (`base_images`: the source closest in appearance,
its in-brain quantiles mapped onto the target's reference quantiles from the card) and the
network's output is added to them, so it learns a correction of histogram matching.
Output channels (3): T1, T2 and FLAIR (`TARGETS`) in z-score units of that contrast inside the
brain; only the channel of the requested target is used, and only when that target is missing.
The network is the project's `UNet3D` (card ``architecture: {type: project, name: unet}``),
run on the head's bounding box on a grid of the card's ``spacing`` (2 mm: the normalised
sources are resampled linearly onto it, the result back onto the scan's own grid).

Example:
    >>> x = build_input({"T1c": np.ones((8, 8, 8), np.float32)})
    >>> x.shape, x[4:].reshape(4, -1)[:, 0].tolist()
    ((8, 8, 8, 8), [0.0, 1.0, 0.0, 0.0])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..progress import CancelToken, check
from .prepost import _foreground, match_quantiles, zscore_foreground

CONTRASTS = ("T1", "T1c", "T2", "FLAIR")
TARGETS = ("T1", "T2", "FLAIR")
IN_CHANNELS = 2 * len(CONTRASTS)
BASE_SOURCE = {"FLAIR": ("T2", "T1", "T1c"), "T2": ("FLAIR", "T1", "T1c"), "T1": ("T1c", "T2", "FLAIR")}


def normalise(x: np.ndarray) -> np.ndarray:
    """One contrast as the network sees it: z-score inside its foreground, background 0."""
    return zscore_foreground(np.nan_to_num(np.asarray(x, np.float32)))


def foreground(x: np.ndarray) -> np.ndarray:
    """Voxels of a skull-stripped scan that differ from its background value."""
    return _foreground(np.nan_to_num(np.asarray(x, np.float32)))


def build_input(normalised: Mapping[str, np.ndarray]) -> np.ndarray:
    """(8, X, Y, Z) float32 network input from {contrast: normalised array} (missing = absent key)."""
    shape = next(iter(normalised.values())).shape
    x = np.zeros((IN_CHANNELS, *shape), np.float32)
    for i, name in enumerate(CONTRASTS):
        if name in normalised:
            x[i] = normalised[name]
            x[len(CONTRASTS) + i] = 1.0
    return x


def base_images(normalised: Mapping[str, np.ndarray],
                reference: Mapping[str, Sequence[float]]) -> np.ndarray:
    """(3, X, Y, Z) histogram-matched base per target (0 where the target itself is present)."""
    shape = next(iter(normalised.values())).shape
    out = np.zeros((len(TARGETS), *shape), np.float32)
    for k, target in enumerate(TARGETS):
        src = next((c for c in BASE_SOURCE[target] if c in normalised), None)
        if target in normalised or src is None:
            continue
        x = normalised[src]
        out[k] = match_quantiles(x, x != 0, reference[target])
    return out


def head_box(fg: np.ndarray, divisor: int, margin: int = 4) -> tuple[slice, ...]:
    """Bounding box of `fg` plus `margin`, each side grown to a multiple of `divisor` when it fits."""
    idx = np.argwhere(fg)
    if idx.size == 0:
        return tuple(slice(0, n) for n in fg.shape)
    out = []
    for lo, hi, n in zip(idx.min(0), idx.max(0) + 1, fg.shape, strict=True):
        start, stop = max(0, int(lo) - margin), min(n, int(hi) + margin)
        need = -(-(stop - start) // divisor) * divisor
        if need <= n:
            start = max(0, min(start, n - need))
            stop = start + need
        out.append(slice(start, stop))
    return tuple(out)


@torch.no_grad()
def run_network(
    net: torch.nn.Module,
    normalised: Mapping[str, np.ndarray],
    target: str,
    *,
    flips: bool = False,
    device: str | torch.device = "cpu",
    cancel: CancelToken | None = None,
    reference: Mapping[str, Sequence[float]] | None = None,
    affine: np.ndarray | None = None,
    spacing: float | None = None,
) -> np.ndarray:
    """The synthetic `target` (z-score units) on the sources' grid; 0 outside the head's box.

    Args:
        net: The loaded ``synth-mri`` U-Net (eval mode).
        normalised: {contrast: `normalise`d array}, all on one grid; `target` not among them.
        target: "T1", "T2" or "FLAIR".
        flips: Also run the left-right mirrored input and average (test-time augmentation).
        device: Torch device.
        cancel: Token polled between passes.
        reference: Target reference quantiles of a residual network (None: plain network).
        affine: The sources' voxel-to-world matrix (needed with `spacing`).
        spacing: Grid (mm) the network runs on; None: the sources' own grid.
    """
    if target not in TARGETS:
        raise ValueError(f"The synthesis network makes {', '.join(TARGETS)}, not {target}.")
    grid = None
    if spacing is not None:
        from .prepost import target_grid

        first = next(iter(normalised.values()))
        grid = target_grid(first.shape, np.eye(4) if affine is None else affine,
                           {"op": "resample", "spacing": float(spacing)})
        names = list(normalised)
        coarse = grid.forward(np.stack([normalised[n] for n in names]))
        normalised = dict(zip(names, coarse, strict=True))
    x = build_input(normalised)
    fg = np.any(x[: len(CONTRASTS)] != 0, axis=0)
    base = None
    if reference is not None:
        base = base_images(normalised, reference)
        x = np.concatenate([x, base])
    divisor = int(getattr(net, "divisor", 8))
    box = head_box(fg, divisor)
    crop = x[(slice(None), *box)]
    pad = [(0, 0)] + [(0, (-s) % divisor) for s in crop.shape[1:]]
    crop = np.pad(crop, pad)
    channel = TARGETS.index(target)
    t = torch.from_numpy(np.ascontiguousarray(crop[None])).to(device)
    t = t.contiguous(memory_format=torch.channels_last_3d)
    pred = net(t)[0, channel].float().cpu().numpy()
    if flips:
        check(cancel)
        mirrored = torch.flip(t, dims=(2,)).contiguous(memory_format=torch.channels_last_3d)
        pred = 0.5 * (pred + torch.flip(net(mirrored), dims=(2,))[0, channel].float().cpu().numpy())
    out = np.zeros(fg.shape, np.float32)
    out[box] = pred[tuple(slice(0, s.stop - s.start) for s in box)]
    out = out + base[channel] if base is not None else out
    return grid.inverse(out[None])[0] if grid is not None else out
