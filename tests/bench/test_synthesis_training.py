"""scripts/train_synthesis.py's second stage starts from given weights, and its losses differ."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import synth_data as sd
import train_synthesis

sys.path.pop(0)


def _subject() -> sd.Subject:
    """A toy exam with all four contrasts on the network's 2 mm grid."""
    rng = np.random.default_rng(0)
    g = np.ogrid[:24, :24, :24]
    brain = sum((a - 12.0) ** 2 for a in g) <= 100
    images = {c: np.where(brain, rng.normal(size=brain.shape), 0).astype(np.float32) for c in sd.CONTRASTS}
    return sd.Subject("toy", images, brain & (g[0] < 12), affine=np.diag([2.0, 2.0, 2.0, 1.0]))


def _train(**kw: object) -> tuple[torch.nn.Module, dict]:
    return train_synthesis.train(
        [_subject()], minutes=10, steps=2, patch=16, batch=1, seed=0, log=lambda s: None, **kw
    )


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return all(torch.allclose(x, y, atol=1e-6) for x, y in pairs)


def test_a_second_stage_starts_from_its_weights_and_mse_is_a_different_loss(tmp_path: Path) -> None:
    first, _ = _train()
    path = tmp_path / "first.safetensors"
    train_synthesis.save_weights(first, path)
    # with a negligible learning rate a resumed run keeps the first stage's weights, a fresh one does not
    resumed, info = _train(lr=1e-12, init=path, loss="mse")
    assert _same(first, resumed) and info["loss"] == "mse"
    assert not _same(first, _train(lr=1e-12)[0])
    assert not _same(_train(init=path, loss="l1")[0], _train(init=path, loss="mse")[0])
