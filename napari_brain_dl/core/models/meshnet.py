"""MeshNet (brainchop) built from its layers.json / model.json description.

MeshNet is a stack of dilated 3x3x3 convolutions, each followed (optionally)
by a parameter-free group norm with one group per channel and a GELU or ReLU,
then a 1x1x1 classifier. brainchop ships two descriptions:

- ``layers.json`` (version 2, "forward_pass" list of ops) - exact for mindgrab;
- ``model.json`` ({"layers": [...], "bnorm": ..., "gelu": ...}) - exact for the
  tissue and parcellation models (mindgrab's model.json does NOT match its weights).

Weights files name tensors ``model.<i>.0.weight`` (blocks) or ``model.<i>.weight``
(flat); `load_meshnet_state` maps them onto this module by convolution order and
names every tensor that does not fit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError


class ArchitectureMismatchError(InputError):
    """The weights do not fit the architecture; the message names the tensors."""


def spec_from_json(path: str | Path) -> dict[str, Any]:
    """Read a brainchop layers.json or model.json into a MeshNet spec.

    The spec is ``{"layers": [{"in", "out", "kernel", "dilation", "padding", "bias"}...],
    "norm": bool, "activation": "gelu"|"relu"}``.

    Example:
        >>> spec = spec_from_json("brainchop_models/mindgrab/layers.json")  # doctest: +SKIP
        >>> len(spec["layers"]), spec["activation"]
        (26, 'gelu')
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return spec_from_dict(data)


def spec_from_dict(data: dict[str, Any]) -> dict[str, Any]:
    """MeshNet spec from a parsed layers.json / model.json / inline card mapping."""
    if "forward_pass" in data:  # layers.json v2: explicit op list
        layers, norm, act = [], False, "relu"
        for op in data["forward_pass"]:
            p = op.get("params", {})
            if op["op"] == "conv3d":
                layers.append(_layer(p))
            elif op["op"] == "group_norm":
                norm = True
            elif op["op"] in ("gelu", "relu"):
                act = op["op"]
            # batch_norm3d without running statistics right after a one-group-per-channel
            # group norm re-normalises already normalised data: an identity up to eps.
        return {"layers": layers, "norm": norm, "activation": act}
    if "layers" in data and data["layers"] and "in_channels" in data["layers"][0]:
        bias = bool(data.get("bias", True))
        layers = [_layer({**layer, "bias": bias}) for layer in data["layers"]]
        for i, layer in enumerate(layers):  # brainchop writes -1 for "set at run time"
            if layer["in"] < 1:
                layer["in"] = layers[i - 1]["out"] if i else 1
            if layer["out"] < 1:
                layer["out"] = int(data.get("n_classes", 2)) if i == len(layers) - 1 else layer["in"]
        return {
            "layers": layers,
            "norm": bool(data.get("bnorm", False)),
            "activation": "gelu" if data.get("gelu") else "relu",
        }
    if "dilations" in data:  # compact inline card form
        ch, dil = int(data["channels"]), [int(d) for d in data["dilations"]]
        layers = [
            {
                "in": int(data.get("in_channels", 1)) if i == 0 else ch,
                "out": ch,
                "kernel": 3,
                "dilation": d,
                "padding": d,
                "bias": bool(data.get("bias", False)),
            }
            for i, d in enumerate(dil)
        ]
        layers.append(
            {
                "in": ch,
                "out": int(data["n_classes"]),
                "kernel": 1,
                "dilation": 1,
                "padding": 0,
                "bias": bool(data.get("final_bias", True)),
            }
        )
        return {
            "layers": layers,
            "norm": bool(data.get("norm", True)),
            "activation": str(data.get("activation", "gelu")),
        }
    raise ValueError("Not a MeshNet description: expected layers.json, model.json or 'dilations'.")


def _layer(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "in": int(p["in_channels"]),
        "out": int(p["out_channels"]),
        "kernel": int(p["kernel_size"]),
        "dilation": int(p.get("dilation", 1)),
        "padding": int(p.get("padding", 0)),
        "bias": bool(p.get("bias", True)),
    }


class MeshNet(nn.Module):
    """Dilated-convolution segmentation network (brainchop MeshNet).

    Example:
        >>> spec = spec_from_dict({"channels": 4, "dilations": [1, 2], "n_classes": 2})
        >>> net = MeshNet(spec).eval()
        >>> net(torch.zeros(1, 1, 8, 8, 8)).shape
        torch.Size([1, 2, 8, 8, 8])
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        self.spec = spec
        self.norm = bool(spec.get("norm", False))
        self.activation = str(spec.get("activation", "relu"))
        self.convs = nn.ModuleList(
            nn.Conv3d(
                la["in"],
                la["out"],
                la["kernel"],
                padding=la["padding"],
                dilation=la["dilation"],
                bias=la["bias"],
            )
            for la in spec["layers"]
        )

    @property
    def in_channels(self) -> int:
        """Input channels of the first convolution."""
        return int(self.convs[0].in_channels)

    def forward(
        self,
        x: torch.Tensor,
        step: Callable[[int, int], None] | None = None,
        total_voxels: int | None = None,
        background: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run the network; `step(i, n)` is called after each layer (progress, cancel).

        Args:
            x: (1, C, D, H, W) input, any memory format.
            step: Called after each layer.
            total_voxels: Voxels of the whole grid `x` was cropped from. The crop then behaves
                like the whole grid: the voxels outside it are taken to hold `background`
                (their value, tracked layer by layer), both in the convolutions' padding and
                in the normalisation statistics. None: `x` is the whole grid.
            background: Per-channel input value outside the crop (default 0).
        """
        n = len(self.convs)
        outside = 0 if total_voxels is None else max(0, int(total_voxels) - x[0, 0].numel())
        bg = background if background is not None else x.new_zeros(x.shape[1])
        for i, conv in enumerate(self.convs):
            if outside and bool(bg.any()):  # zero padding of (x - bg) == padding x with bg
                x = x - bg.view(1, -1, 1, 1, 1)
                shift = conv.weight.sum(dim=(2, 3, 4)) @ bg
                y = conv(x).add_(shift.view(1, -1, 1, 1, 1))
            else:
                shift = x.new_zeros(conv.out_channels)
                y = conv(x)
            bg = shift + (conv.bias if conv.bias is not None else 0.0)
            if i < n - 1:
                if self.norm:
                    y, bg = instance_norm_(y, outside, bg)
                y, bg = _act_(y, self.activation), _act(bg, self.activation)
            x = y
            if step is not None:
                step(i + 1, n)
        return x

    def flops(self, voxels: int) -> float:
        """Multiply-add FLOPs (2 per MAC) of the convolutions for `voxels` output voxels."""
        return float(
            sum(2 * c.in_channels * c.out_channels * c.kernel_size[0] ** 3 * voxels for c in self.convs)
        )


def instance_norm_(
    y: torch.Tensor, outside: int = 0, background: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Parameter-free group norm with one group per channel, in place.

    Statistics come from two BLAS matrix-vector products over a (voxels, C) view
    (much faster than `var_mean` on channels-last data) and may include
    `outside` further voxels holding `background` (see `MeshNet.forward`).

    Returns:
        The normalised tensor (same storage) and the normalised background value.
    """
    c = y.shape[1]
    bg = background if background is not None else y.new_zeros(c)
    if y.is_contiguous(memory_format=torch.channels_last_3d) and not y.is_contiguous():
        rows = y.permute(0, 2, 3, 4, 1).reshape(-1, c)  # a view: (voxels, C)
    else:
        rows = y.reshape(c, -1).t()
    m = rows.shape[0]
    total = m + outside
    bg = bg.float()
    with torch.autocast(y.device.type, enabled=False):  # fp16 sums would overflow: stats in fp32
        rows32 = rows if rows.dtype == torch.float32 else rows.float()
        ones = _ones(m, rows32)
        mean = ((ones @ rows32)[0] + outside * bg) / total
        y.sub_(mean.to(y.dtype).view(1, -1, 1, 1, 1))
        rows32 = rows if rows.dtype == torch.float32 else rows.float()
        var = ((ones @ (rows32 * rows32))[0] + outside * (bg - mean) ** 2) / total
    rstd = torch.rsqrt(var + 1e-5)
    y.mul_(rstd.to(y.dtype).view(1, -1, 1, 1, 1))
    return y, (bg - mean) * rstd


_ONES: dict[tuple[int, torch.dtype, torch.device], torch.Tensor] = {}


def _ones(m: int, like: torch.Tensor) -> torch.Tensor:
    key = (m, like.dtype, like.device)
    if key not in _ONES:
        _ONES.clear()
        _ONES[key] = torch.ones(1, m, dtype=like.dtype, device=like.device)
    return _ONES[key]


def _act(x: torch.Tensor, activation: str) -> torch.Tensor:
    return F.gelu(x) if activation == "gelu" else F.relu(x)


def _act_(x: torch.Tensor, activation: str) -> torch.Tensor:
    """In-place activation (no 0.4 GB allocation per layer); out of place when autograd needs it."""
    if x.requires_grad:
        return _act(x, activation)
    return torch.ops.aten.gelu_(x) if activation == "gelu" else F.relu_(x)


_NUM = re.compile(r"(\d+)")


def _natural(key: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in _NUM.split(key)]


def load_meshnet_state(net: MeshNet, state: dict[str, torch.Tensor], source: str = "weights") -> None:
    """Copy a brainchop state_dict into `net`, matching convolutions in order.

    Raises:
        ArchitectureMismatchError: Counts or shapes differ; the message names the tensors.
    """
    weights = sorted((k for k in state if k.endswith(".weight") and state[k].ndim == 5), key=_natural)
    problems: list[str] = []
    if len(weights) != len(net.convs):
        problems.append(
            f"{len(weights)} convolution weights in the file, {len(net.convs)} in the architecture"
        )
    for conv, key in zip(net.convs, weights, strict=False):
        w = state[key]
        if tuple(w.shape) != tuple(conv.weight.shape):
            problems.append(f"{key}: file {tuple(w.shape)} vs architecture {tuple(conv.weight.shape)}")
            continue
        bias_key = key[: -len("weight")] + "bias"
        if bias_key in state and conv.bias is None:
            # The description omits a bias the weights carry (mindgrab's last layer): add it.
            conv.bias = nn.Parameter(torch.zeros(conv.out_channels))
        if conv.bias is not None and bias_key not in state:
            problems.append(f"{bias_key}: missing from the file (the architecture has a bias)")
        elif bias_key in state and tuple(state[bias_key].shape) != (conv.out_channels,):
            problems.append(
                f"{bias_key}: file {tuple(state[bias_key].shape)} vs architecture ({conv.out_channels},)"
            )
    extra = [k for k in state if k not in weights and k[: -len("bias")] + "weight" not in weights]
    if extra:
        problems.append("unexpected tensors: " + ", ".join(extra[:6]))
    if problems:
        raise ArchitectureMismatchError(
            f"The {source} do not match the MeshNet architecture: " + "; ".join(problems[:8]) + "."
        )
    with torch.no_grad():
        for conv, key in zip(net.convs, weights, strict=True):
            conv.weight.copy_(state[key].float())
            if conv.bias is not None:
                conv.bias.copy_(state[key[: -len("weight")] + "bias"].float())
