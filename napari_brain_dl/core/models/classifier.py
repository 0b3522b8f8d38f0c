"""The project's "tumour present" classifier: fully convolutional, global top-k pooling.

A small 3D CNN maps FLAIR (+ optional T1c) at 2 mm to an evidence map at 8 mm
(one score per 8 mm cell: "tumour here"). The class logit is the mean of the
``topk`` highest cells, so the same network classifies a 48^3 patch and a whole
brain alike, and its evidence map (what Grad-CAM on the last block recovers) is
the heatmap whose right answer is known: the tumour. Batch norm (not instance
norm) keeps patch and whole-volume statistics identical at inference.

Outputs two logits ``[no_tumour, tumour] = [0, pooled]`` so softmax gives
``sigmoid(pooled)`` and any class index works as for other classifiers.

Example:
    >>> import torch
    >>> net = TumorClassifier(in_channels=2)
    >>> net(torch.zeros(1, 2, 48, 48, 48)).shape
    torch.Size([1, 2])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
    return [
        nn.Conv3d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm3d(cout),
        nn.LeakyReLU(0.01, inplace=True),
    ]


class TumorClassifier(nn.Module):
    """Stem at full resolution, two stride-2 stages, one dilated context stage, 1x1 head.

    Attributes:
        blocks: ``blocks.0`` stem, ``blocks.1``/``blocks.2`` downsampling stages,
            ``blocks.3`` the last convolutional block (default Grad-CAM layer).
        head: 1x1x1 convolution to the evidence map.
        default_cam_layer: Name of the layer Grad-CAM uses by default.
    """

    default_cam_layer = "blocks.3"

    def __init__(self, in_channels: int = 2, features: Sequence[int] = (8, 16, 32, 32), topk: int = 8):
        super().__init__()
        f = [int(v) for v in features]
        self.topk = int(topk)
        self.divisor = 4
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(*_conv(in_channels, f[0])),
                nn.Sequential(*_conv(f[0], f[1], stride=2), *_conv(f[1], f[1])),
                nn.Sequential(*_conv(f[1], f[2], stride=2), *_conv(f[2], f[2])),
                nn.Sequential(*_conv(f[2], f[3], dilation=2), *_conv(f[3], f[3], dilation=2)),
            ]
        )
        self.head = nn.Conv3d(f[3], 1, 1)

    def evidence(self, x: torch.Tensor) -> torch.Tensor:
        """Tumour evidence map (B, 1, d, h, w) at 1/4 of the input resolution."""
        for block in self.blocks:
            x = block(x)
        return self.head(x)

    def pool(self, evidence: torch.Tensor) -> torch.Tensor:
        """Mean of the ``topk`` highest cells per sample: (B,)."""
        flat = evidence.flatten(1)
        k = max(1, min(self.topk, flat.shape[1]))
        return flat.topk(k, dim=1).values.mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(self.evidence(x))
        return torch.stack([torch.zeros_like(pooled), pooled], dim=1)


def build_classifier(arch: dict[str, Any]) -> TumorClassifier:
    """Build from a card's ``architecture`` (keys in_channels, features, topk)."""
    return TumorClassifier(
        int(arch.get("in_channels", 2)),
        tuple(arch.get("features", (8, 16, 32, 32))),
        int(arch.get("topk", 8)),
    )
