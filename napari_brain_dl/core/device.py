"""Device choice, mixed-precision policy and out-of-memory fallback.

``auto`` picks CUDA, then Apple MPS, then CPU. Automatic mixed precision is
used on CUDA only (CPU bfloat16 and MPS float16 change results too much for
thin 3D networks). When a GPU runs out of memory the engine retries with
smaller sliding windows, then on the CPU, and tells the user through
`notify`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import torch

from .device_names import DEVICES

T = TypeVar("T")


def choose_device(preference: str | torch.device = "auto") -> torch.device:
    """Resolve ``auto|cpu|cuda|mps`` (or ``cuda:1``) to an available torch device.

    Raises:
        ValueError: Unknown name, or the requested accelerator is not available.

    Example:
        >>> choose_device("cpu")
        device(type='cpu')
    """
    if isinstance(preference, torch.device):
        return preference
    name = str(preference or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    base = name.split(":")[0]
    if base not in DEVICES:
        raise ValueError(f"Unknown device {preference!r}; choose one of {', '.join(DEVICES)}.")
    if base == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was requested but no CUDA GPU is available to PyTorch; use --device cpu.")
    if base == "mps" and not _mps_available():
        raise ValueError("MPS was requested but Apple Metal is not available; use --device cpu.")
    return torch.device(name)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def use_amp(device: torch.device, allowed: bool = True) -> bool:
    """AMP policy: float16 autocast on CUDA only, and only when the card allows it."""
    return allowed and device.type == "cuda"


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """Autocast context for `device` (a no-op context when disabled)."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.float16)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA/MPS/CPU allocation failures."""
    if isinstance(exc, torch.cuda.OutOfMemoryError | MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "failed to allocate" in text or "can't allocate memory" in text
    )


def free_cache(device: torch.device) -> None:
    """Release cached accelerator memory after a failure."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


def fallback_plan(
    device: torch.device, roi_size: Sequence[int] | None, min_roi: int = 32
) -> Iterator[tuple[torch.device, tuple[int, ...] | None]]:
    """Yield (device, window) attempts: the request, halved windows, then the CPU.

    Example:
        >>> [(d.type, r) for d, r in fallback_plan(torch.device("cuda"), (128, 128, 128), min_roi=64)]
        [('cuda', (128, 128, 128)), ('cuda', (64, 64, 64)), ('cpu', (128, 128, 128))]
    """
    yield device, tuple(roi_size) if roi_size else None
    if device.type == "cpu":
        return
    roi = tuple(roi_size) if roi_size else None
    while roi is not None and max(roi) // 2 >= min_roi:
        roi = tuple(max(min_roi, r // 2) for r in roi)
        yield device, roi
    yield torch.device("cpu"), tuple(roi_size) if roi_size else None


def run_with_fallback(
    run: Callable[[torch.device, tuple[int, ...] | None], T],
    device: torch.device,
    roi_size: Sequence[int] | None = None,
    notify: Callable[[str], None] | None = None,
    min_roi: int = 32,
) -> T:
    """Call ``run(device, roi)``; on out-of-memory retry smaller windows, then on the CPU.

    Args:
        run: Does the work on a device with a sliding-window size (None: whole volume).
        device: First device to try.
        roi_size: Window size of the first attempt (None when the model runs in one pass).
        notify: Receives one plain sentence per fallback (a widget shows it, the CLI prints it).
        min_roi: Smallest window edge worth trying.

    Example:
        >>> run_with_fallback(lambda dev, roi: dev.type, torch.device("cpu"))
        'cpu'
    """
    last: BaseException | None = None
    for dev, roi in fallback_plan(device, roi_size, min_roi):
        if last is not None and notify is not None:
            where = (
                f"windows of {'x'.join(map(str, roi))}" if roi and dev.type != "cpu" else "the CPU (slower)"
            )
            notify(f"Out of memory on {device.type.upper()}; retrying with {where}.")
        try:
            return run(dev, roi)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            last = exc
            free_cache(dev)
    raise MemoryError(f"Not enough memory to run the model, even on the CPU ({last}).")
