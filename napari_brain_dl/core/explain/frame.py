"""The model's view of a scan, and the exact way back onto the scan's own grid.

`prepare` applies what a card says (exact reorientation, zscore/scale, resampling,
crop to the head) and keeps every step's inverse, so `ModelFrame.to_scan` puts a
heatmap computed on the model grid back onto the input's shape and affine:
uncrop -> trilinear inverse resampling -> inverse axis permutation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from nibabel import orientations as ornt_

from ..models import prepost
from ..models.card import ModelCard
from ..volume import Volume, restore_orientation


@dataclass
class ModelFrame:
    """Preprocessed, cropped model input plus what is needed to map results back.

    Attributes:
        x: (C, d, h, w) float32 model input (cropped to the head).
        box: Crop of the preprocessed grid.
        full_shape: Preprocessed (uncropped) grid shape.
        grid: Resampling between the reoriented scan and the model grid.
        transform: Reorientation transform (None when the card keeps the input's).
        ref: The scan whose grid every result lands on.
        sources: The input Volumes, in card order.
    """

    x: np.ndarray
    box: tuple[slice, ...]
    full_shape: tuple[int, ...]
    grid: prepost.GridMap
    transform: np.ndarray | None
    ref: Volume
    sources: list[Volume] = field(default_factory=list)

    @property
    def brain(self) -> np.ndarray:
        """Voxels of the model input that hold signal in any channel (bool, model grid)."""
        return np.any(self.x != 0, axis=0)

    def tensor(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The input as a (1, C, d, h, w) tensor."""
        return torch.from_numpy(np.ascontiguousarray(self.x))[None].to(device)

    def to_scan(self, arr: np.ndarray, order: int = 1) -> np.ndarray:
        """Map a model-grid array (d, h, w) onto the scan's grid (its shape, exactly)."""
        full = np.zeros((1, *self.full_shape), np.float32)
        full[(0, *self.box)] = arr
        back = self.grid.inverse(full, order=order)[0]
        if self.transform is not None:
            back = restore_orientation(back, self.transform)
        return np.ascontiguousarray(back, dtype=np.float32)

    def from_scan(self, mask: Volume) -> np.ndarray:
        """A scan-grid mask (e.g. labels > 0) on the cropped model grid (bool)."""
        if not mask.same_grid(self.ref, atol=1e-3):
            raise ValueError(
                f"The mask {mask.name} is not on the grid of {self.ref.name}; resample it first."
            )
        data = (np.asarray(mask.data) > 0).astype(np.float32)
        if self.transform is not None:  # same grid as ref: the same exact axis permutation
            data = ornt_.apply_orientation(data, self.transform)
        moved = self.grid.forward(np.ascontiguousarray(data)[None])[0]
        return moved[self.box] >= 0.5


def prepare(card: ModelCard, vols: Sequence[Volume], *, divisible: int = 8) -> ModelFrame:
    """Preprocess `vols` (card input order, shared grid) as the card says; keep the inverses.

    Args:
        card: The model card (orientation, preprocessing, inference.margin).
        vols: One Volume per card input; the first defines the grid results land on.
        divisible: Crop sides are grown to multiples of this (occlusion windows, stride-2 nets).

    Raises:
        ValueError: Wrong number of inputs or inputs on different grids.
    """
    from ..inference import check_inputs, preprocess

    ref = check_inputs(card, vols)
    data, grid, transform = preprocess(card, vols)
    margin = int(card.inference.get("margin", 8))
    box = prepost.foreground_bbox(data, margin, divisible)
    x = np.ascontiguousarray(data[(slice(None), *box)], dtype=np.float32)
    return ModelFrame(x, box, tuple(data.shape[1:]), grid, transform, ref, list(vols))
