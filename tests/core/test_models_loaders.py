"""Weights loading: format by content, safe unpickling, hostile files refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from napari_brain_dl.core.models import registry
from napari_brain_dl.core.models.card import ModelCard
from napari_brain_dl.core.models.loaders import (
    ArchitectureMismatchError,
    HashMismatchError,
    UntrustedModelError,
    WeightsError,
    detect_format,
    load_model,
    read_state_dict,
    sha256_file,
)
from napari_brain_dl.core.models.meshnet import MeshNet, spec_from_dict

TINY = {"channels": 3, "dilations": [1, 2], "n_classes": 2, "norm": True, "activation": "gelu"}


def tiny_state(seed: int = 0, channels: int = 3) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    net = MeshNet(spec_from_dict({**TINY, "channels": channels}))
    return {
        f"model.{i}.weight" if i == 2 else f"model.{i}.0.weight": c.weight.detach().clone()
        for i, c in enumerate(net.convs)
    } | {"model.2.bias": net.convs[2].bias.detach().clone()}


def tiny_card(folder: Path, weights: str, sha: str | None = None, channels: int = 3) -> ModelCard:
    data = {
        "id": "tiny",
        "name": "Tiny",
        "task": "segmentation",
        "inputs": ["T1"],
        "architecture": {"type": "meshnet", **TINY, "channels": channels},
        "weights": {"file": weights, **({"sha256": sha} if sha else {})},
    }
    (folder / "tiny.yaml").write_text(yaml.safe_dump(data))
    return ModelCard.from_file(folder / "tiny.yaml")


class _Evil:
    """Pickles to a call that writes a file when unpickled."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (shutil.copyfile, (__file__, str(self.target)))


def test_formats_detected_by_content_not_extension(data_dir: Path, tmp_path: Path) -> None:
    bc = data_dir / "brainchop_models"
    assert detect_format(bc / "mindgrab" / "model.pth") == "torch_zip"
    assert detect_format(bc / "model21_104class" / "model.pth") == "safetensors"  # despite .pth
    state = tiny_state()
    save_file(state, str(tmp_path / "weights.pt"))
    torch.save(state, tmp_path / "weights.safetensors")
    assert detect_format(tmp_path / "weights.pt") == "safetensors"
    assert detect_format(tmp_path / "weights.safetensors") == "torch_zip"
    for name in ("weights.pt", "weights.safetensors"):
        torch.testing.assert_close(
            read_state_dict(tmp_path / name)["model.0.0.weight"], state["model.0.0.weight"]
        )
    (tmp_path / "notes.pth").write_text("hello")
    with pytest.raises(WeightsError, match="not a PyTorch"):
        read_state_dict(tmp_path / "notes.pth")


def test_torch_load_always_weights_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k.get("weights_only")) or real(*a, **k))
    torch.save(tiny_state(), tmp_path / "w.pth")
    read_state_dict(tmp_path / "w.pth")
    assert calls == [True]


@pytest.mark.parametrize("writer", ["torch", "safetensors"])
def test_truncated_weights_refused(tmp_path: Path, writer: str) -> None:
    path = tmp_path / "w.pth"
    (torch.save if writer == "torch" else lambda s, p: save_file(s, str(p)))(tiny_state(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        read_state_dict(path)
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        load_model(tiny_card(tmp_path, "w.pth"))


def test_wrong_architecture_names_the_tensors(tmp_path: Path) -> None:
    torch.save(tiny_state(channels=4), tmp_path / "w.pth")
    with pytest.raises(ArchitectureMismatchError, match=r"model\.0\.0\.weight: file \(4, 1, 3, 3, 3\)"):
        load_model(tiny_card(tmp_path, "w.pth", channels=3))


def test_hash_mismatch_refused(tmp_path: Path) -> None:
    torch.save(tiny_state(), tmp_path / "w.pth")
    with pytest.raises(HashMismatchError, match="sha256"):
        load_model(tiny_card(tmp_path, "w.pth", sha="0" * 64))
    ok = load_model(tiny_card(tmp_path, "w.pth", sha=sha256_file(tmp_path / "w.pth")))
    assert ok.kind == "meshnet" and ok.sha256 == sha256_file(tmp_path / "w.pth")


def test_pickle_that_runs_code_is_refused_even_when_trusted(tmp_path: Path) -> None:
    target = tmp_path / "pwned.txt"
    torch.save({"weight": torch.zeros(1), "payload": _Evil(target)}, tmp_path / "evil.pth")
    with pytest.raises(UntrustedModelError, match="would import and run code"):
        read_state_dict(tmp_path / "evil.pth")
    with pytest.raises(UntrustedModelError, match="refused even though trusted"):
        read_state_dict(tmp_path / "evil.pth", trusted=True)
    assert not target.exists()


def test_full_module_pickle_needs_trust(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 1))
    torch.save(module, tmp_path / "full.pt")
    with pytest.raises(UntrustedModelError):
        read_state_dict(tmp_path / "full.pt")
    registry.trust(tmp_path / "full.pt")
    assert sha256_file(tmp_path / "full.pt") in registry.trusted_hashes()
    state = read_state_dict(tmp_path / "full.pt", trusted=True)
    torch.testing.assert_close(state["0.weight"], module[0].weight)
    registry.trust(tmp_path / "full.pt", trusted=False)
    assert not registry.trusted_hashes()


def test_torchscript_model_runs(tmp_path: Path) -> None:
    scripted = torch.jit.script(torch.nn.Conv3d(1, 2, 1).eval())
    scripted.save(str(tmp_path / "net.bin"))
    assert detect_format(tmp_path / "net.bin") == "torchscript"
    card = ModelCard.from_dict(
        {
            "id": "ts",
            "name": "TS",
            "task": "segmentation",
            "inputs": ["T1"],
            "architecture": {"type": "torchscript"},
            "weights": {"file": "net.bin"},
        },
        folder=tmp_path,
    )
    model = load_model(card)
    assert model.kind == "torchscript" and model.module(torch.zeros(1, 1, 4, 4, 4)).shape == (1, 2, 4, 4, 4)
    with pytest.raises(WeightsError, match="TorchScript"):
        read_state_dict(tmp_path / "net.bin")


def _unet_card(folder: Path, members: int) -> ModelCard:
    arch = {"type": "project", "name": "unet", "in_channels": 2, "out_channels": 1,
            "features": [4, 8], "members": members}
    data = {"id": "ens", "name": "Ens", "task": "segmentation", "inputs": ["T1", "T2"],
            "architecture": arch, "weights": {"file": "ens.safetensors"}}
    (folder / "ens.yaml").write_text(yaml.safe_dump(data))
    return ModelCard.from_file(folder / "ens.yaml")


def test_ensemble_card_averages_its_members_logits(tmp_path: Path) -> None:
    from napari_brain_dl.core.models.unet import UNet3D

    torch.manual_seed(0)
    nets = [UNet3D(2, 1, (4, 8)).eval() for _ in range(2)]
    state = {f"members.{i}.{k}": v for i, n in enumerate(nets) for k, v in n.state_dict().items()}
    save_file(state, str(tmp_path / "ens.safetensors"))
    model = load_model(_unet_card(tmp_path, 2), trusted=True)
    x = torch.randn(1, 2, 8, 8, 8)
    with torch.no_grad():
        expected = (nets[0](x) + nets[1](x)) / 2
        assert torch.allclose(model.module(x), expected, atol=1e-5)
    # a single network's file is refused by a two-member card, naming what is missing
    save_file(nets[0].state_dict(), str(tmp_path / "ens.safetensors"))
    with pytest.raises(ArchitectureMismatchError, match=r"members\.0\."):
        load_model(_unet_card(tmp_path, 2), trusted=True)
    with pytest.raises(WeightsError, match="architecture is invalid"):
        load_model(_unet_card(tmp_path, 0), trusted=True)
