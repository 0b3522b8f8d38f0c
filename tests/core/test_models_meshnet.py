"""MeshNet from brainchop descriptions, fused normalisation, crop equivalence."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from napari_brain_dl.core.models.loaders import read_state_dict
from napari_brain_dl.core.models.meshnet import (
    ArchitectureMismatchError,
    MeshNet,
    instance_norm_,
    load_meshnet_state,
    spec_from_dict,
    spec_from_json,
)


def test_mindgrab_layers_json_matches_weights_and_model_json_does_not(data_dir: Path) -> None:
    folder = data_dir / "brainchop_models" / "mindgrab"
    state = read_state_dict(folder / "model.pth")
    spec = spec_from_json(folder / "layers.json")
    assert len(spec["layers"]) == 26 and spec["activation"] == "gelu" and spec["norm"]
    net = MeshNet(spec)
    load_meshnet_state(net, state)
    assert net.convs[-1].bias is not None  # the weights carry the classifier bias
    with pytest.raises(ArchitectureMismatchError, match=r"model\.0\.0\.weight.*\(15, 1, 3, 3, 3\)"):
        load_meshnet_state(MeshNet(spec_from_json(folder / "model.json")), state)


@pytest.mark.parametrize(("name", "classes"), [("model5_gw_ae", 3), ("model21_104class", 104)])
def test_safetensors_models_load_from_model_json(data_dir: Path, name: str, classes: int) -> None:
    folder = data_dir / "brainchop_models" / name
    net = MeshNet(spec_from_json(folder / "model.json")).eval()
    load_meshnet_state(net, read_state_dict(folder / "model.pth"))
    with torch.inference_mode():
        assert net(torch.rand(1, 1, 12, 12, 12)).shape == (1, classes, 12, 12, 12)


def test_fused_instance_norm_matches_group_norm() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 4, 6, 7, 8) * 3 + 1
    expected = F.group_norm(x, 4, eps=1e-5)
    for fmt in (torch.contiguous_format, torch.channels_last_3d):
        out, _ = instance_norm_(x.clone().contiguous(memory_format=fmt))
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("norm", [False, True])
def test_crop_with_virtual_background_matches_whole_grid(norm: bool) -> None:
    """A head crop behaves like the whole grid: same padding value and statistics."""
    torch.manual_seed(1)
    net = MeshNet(
        spec_from_dict(
            {
                "channels": 3,
                "dilations": [1, 2],
                "n_classes": 2,
                "norm": norm,
                "activation": "gelu",
                "bias": True,
            }
        )
    ).eval()
    x = torch.zeros(1, 1, 40, 40, 40)
    x[:, :, 16:24, 15:25, 17:23] = torch.rand(1, 1, 8, 10, 6) + 0.5
    box = (slice(None), slice(None), slice(10, 30), slice(9, 31), slice(11, 29))
    with torch.inference_mode():
        whole = net(x)[box]
        naive = net(x[box].contiguous())
        crop = net(x[box].contiguous(), total_voxels=40**3)
    err_virtual = (crop - whole).abs().max().item()
    assert err_virtual < (1e-4 if not norm else 2e-2)
    if norm:
        assert err_virtual < 0.2 * (naive - whole).abs().max().item()
