"""The engine: geometry kept exact, progress, cancel, caching, provenance, device policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from napari_brain_dl.core import device as dev
from napari_brain_dl.core import io
from napari_brain_dl.core.image_metrics import dice
from napari_brain_dl.core.inference import clear_cache, get_model, predict
from napari_brain_dl.core.models.card import ModelCard
from napari_brain_dl.core.progress import Cancelled, CancelToken
from napari_brain_dl.core.volume import Volume

PROVENANCE_KEYS = {"model_id", "weights_sha256", "parameters", "package_version", "device", "seconds"}


def identity_card(folder: Path, **extra: object) -> ModelCard:
    """A one-layer 1x1x1 network with weight 1: output == preprocessed input."""
    torch.save(
        {"model.0.weight": torch.ones(1, 1, 1, 1, 1), "model.0.bias": torch.zeros(1)}, folder / "identity.pth"
    )
    data = {
        "id": "identity",
        "name": "Identity",
        "task": "synthesis",
        "inputs": ["T1"],
        "orientation": "LIA",
        "output": {"kind": "image"},
        "architecture": {
            "type": "meshnet",
            "layers": [{"in_channels": 1, "out_channels": 1, "kernel_size": 1, "padding": 0}],
        },
        "weights": {"file": "identity.pth"},
        "inference": {"crop": "none"},
        **extra,
    }
    (folder / "identity.yaml").write_text(yaml.safe_dump(data))
    return ModelCard.from_file(folder / "identity.yaml")


def threshold_card(folder: Path, **inference: object) -> ModelCard:
    """Two-class network: class 1 where the input is bright (a deterministic 'segmenter')."""
    torch.save(
        {
            "model.0.weight": torch.tensor([-1.0, 1.0]).view(2, 1, 1, 1, 1),
            "model.0.bias": torch.tensor([0.5, -0.5]),
        },
        folder / "thr.pth",
    )
    data = {
        "id": "thr",
        "name": "Threshold",
        "task": "segmentation",
        "inputs": ["T1"],
        "orientation": "LIA",
        "preprocessing": [
            {"op": "conform", "shape": [64, 64, 64], "spacing": 4.0},
            {"op": "scale", "low": 0, "high": 1},
        ],
        "postprocessing": [{"op": "argmax"}],
        "output": {"kind": "labels"},
        "architecture": {
            "type": "meshnet",
            "layers": [{"in_channels": 1, "out_channels": 2, "kernel_size": 1, "padding": 0}],
        },
        "weights": {"file": "thr.pth"},
        "inference": {"margin": 2, **inference},
    }
    (folder / "thr.yaml").write_text(yaml.safe_dump(data))
    return ModelCard.from_file(folder / "thr.yaml")


def test_reorientation_round_trip_is_exact_on_lps_brats(data_dir: Path, tmp_path: Path) -> None:
    t1 = io.load(data_dir / "brats_gli_00001" / "t1n.nii.gz")
    pred = predict(identity_card(tmp_path), t1, device="cpu")
    out = pred.outputs["image"]
    assert out.same_grid(t1) and out.axcodes == "LPS"
    np.testing.assert_array_equal(out.data, np.asarray(t1.data, np.float32))


def test_conform_and_crop_land_on_the_input_grid(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = np.zeros((50, 60, 40), np.float32)
    data[15:35, 20:45, 10:30] = 100 + rng.random((20, 25, 20))
    affine = np.array(
        [[-1.2, 0, 0, 30], [0, -0.9, 0, 40], [0, 0, 2.0, -20], [0, 0, 0, 1]]
    )  # LPS, anisotropic
    vol = Volume(data, affine, "synthetic")
    pred = predict(threshold_card(tmp_path), vol, device="cpu")
    mask = pred.primary
    assert mask.same_grid(vol) and mask.data.dtype == np.uint8
    truth = data > 50
    assert dice(truth, mask.data) > 0.9  # 4 mm model grid and back
    assert set(pred.provenance) >= PROVENANCE_KEYS and pred.provenance["device"] == "cpu"
    assert mask.meta["provenance"]["model_id"] == "thr"
    box = pred.provenance["parameters"]["crop_box"]
    assert any(b - a < 64 for a, b in box)  # cropped to the head


def test_sliding_window_progress_and_cancel(tmp_path: Path) -> None:
    vol = Volume(np.random.default_rng(1).random((40, 40, 40)).astype(np.float32) + 1, np.eye(4))
    card = threshold_card(tmp_path, mode="sliding_window", roi_size=[16, 16, 16], overlap=0.25, crop="none")
    seen: list[tuple[int, int, str]] = []
    pred = predict(card, vol, device="cpu", progress=lambda d, t, s: seen.append((d, t, s)))
    assert pred.primary.same_grid(vol)
    windows = [s for s in seen if s[2].startswith("window")]
    assert len(windows) > 1 and windows[-1][0] == len(windows)
    token = CancelToken()

    def cancel_after_two(done: int, total: int, text: str) -> None:
        if text.startswith("window") and done == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        predict(card, vol, device="cpu", progress=cancel_after_two, cancel=token)


def test_model_cached_and_input_count_checked(tmp_path: Path) -> None:
    clear_cache()
    card = threshold_card(tmp_path)
    first = get_model(card, "cpu")
    assert get_model(card, "cpu") is first
    with pytest.raises(ValueError, match="needs 1 input"):
        predict(card, [Volume(np.ones((4, 4, 4)), np.eye(4))] * 2, device="cpu")


def test_device_policy_and_oom_fallback() -> None:
    assert dev.choose_device("cpu").type == "cpu" and dev.choose_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="Unknown device"):
        dev.choose_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            dev.choose_device("cuda")
    assert not dev.use_amp(torch.device("cpu")) and dev.use_amp(torch.device("cuda"))
    assert not dev.use_amp(torch.device("mps"))
    tried: list[tuple[str, tuple[int, ...] | None]] = []
    notes: list[str] = []

    def run(device: torch.device, roi: tuple[int, ...] | None) -> str:
        tried.append((device.type, roi))
        if device.type == "cuda":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return "ok"

    assert dev.run_with_fallback(run, torch.device("cuda"), (128, 128, 128), notes.append, min_roi=32) == "ok"
    assert tried == [("cuda", (128,) * 3), ("cuda", (64,) * 3), ("cuda", (32,) * 3), ("cpu", (128,) * 3)]
    assert len(notes) == 3 and "CPU" in notes[-1]
    with pytest.raises(ValueError):
        dev.run_with_fallback(lambda d, r: (_ for _ in ()).throw(ValueError("bad")), torch.device("cpu"))


@pytest.mark.slow
def test_tissue_model_on_lps_brats_keeps_geometry(data_dir: Path) -> None:
    t1 = io.load(data_dir / "brats_gli_00001" / "t1n.nii.gz")  # LPS 240x240x155 -> LIA 256^3 and back
    pred = predict(data_dir / "brainchop_models" / "model5_gw_ae", t1, device="cpu")
    labels = pred.primary
    assert labels.same_grid(t1) and labels.axcodes == "LPS"
    assert set(np.unique(labels.data)) == {0, 1, 2}
    brain = np.asarray(t1.data) > 0
    assert (labels.data[~brain] > 0).mean() < 0.01  # nothing outside the stripped brain
    assert pred.provenance["weights_sha256"].startswith("8b83b35b")


def test_out_of_memory_fallback_leaves_the_cached_model_where_it_was(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An out-of-memory retry on another device runs a copy: the cache entry keeps its device
    and its module's parameters stay there (issue #18)."""
    from napari_brain_dl.core import inference

    clear_cache()
    card = identity_card(tmp_path)
    cached = get_model(card, "cpu")
    calls: list[str] = []
    real_forward = inference._forward

    def forward(loaded, crop, device, *args):  # type: ignore[no-untyped-def]
        calls.append(str(next(loaded.module.parameters()).device))
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(cached, crop, torch.device("cpu"), *args)  # compute where data exists

    def plan(device, roi, min_roi=32):  # type: ignore[no-untyped-def]
        yield device, roi
        yield torch.device("meta"), roi  # "another device": a real move, no GPU needed

    monkeypatch.setattr(inference, "_forward", forward)
    monkeypatch.setattr(dev, "fallback_plan", plan)
    notes: list[str] = []
    vol = Volume(np.random.default_rng(0).random((8, 9, 10)).astype(np.float32), np.eye(4))
    out = predict(card, vol, device="cpu", notify=notes.append)
    assert calls == ["cpu", "meta"] and notes and "Out of memory" in notes[0]
    assert out.provenance["device"] == "meta"  # the result says where it ran
    again = get_model(card, "cpu")
    assert again is cached and again.device.type == "cpu"
    assert all(p.device.type == "cpu" for p in again.module.parameters())
    clear_cache()
