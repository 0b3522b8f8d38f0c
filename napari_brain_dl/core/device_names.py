"""The device names a user may choose (widgets, CLI, cards); importing this needs no torch."""

from __future__ import annotations

#: ``auto`` picks CUDA, then Apple MPS, then the CPU (`core.device.choose_device`).
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
