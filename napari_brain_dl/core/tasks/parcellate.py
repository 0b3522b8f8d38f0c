"""Whole-brain parcellation (brainchop model21, 104 FreeSurfer regions) with region volumes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..models.card import LabelInfo, ModelCard, labels_from_colormap
from ..progress import CancelToken, ProgressCallback
from ..volume import Volume


@dataclass
class Parcellation:
    """Labels on the input grid plus one row per region.

    Attributes:
        labels: uint8/int16 label map with the input's shape and affine.
        regions: [{"label", "name", "color", "voxels", "volume_ml"}] for every label present (not 0).
        names: {label value: name} for all labels the model knows.
    """

    labels: Volume
    regions: list[dict[str, Any]]
    names: dict[int, str]


def parcellate(
    volume: Volume,
    model: str | Path | ModelCard,
    *,
    brain_mask: Volume | None = None,
    device: str = "auto",
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    notify: Callable[[str], None] | None = None,
) -> Parcellation:
    """Parcellate a T1 into the model's regions and measure each region in mL.

    Args:
        volume: T1 scan. model21 expects a skull-stripped brain: pass `brain_mask`
            (e.g. from `skullstrip`) to zero everything outside it first.
        model: model21_104class card, weights file or its folder as distributed.
        brain_mask: Optional mask on the same grid as `volume`.
        device, progress, cancel, notify: As for `predict`.

    Example:
        >>> t1 = load("t1_crop.nii.gz")  # doctest: +SKIP
        >>> mask = skullstrip(t1, "brainchop_models/mindgrab")  # doctest: +SKIP
        >>> parc = parcellate(t1, "brainchop_models/model21_104class", brain_mask=mask)  # doctest: +SKIP
        >>> parc.regions[0]["name"], parc.regions[0]["volume_ml"]  # doctest: +SKIP
        ('ctx-lh-bankssts', 2.6)
    """
    from ..inference import predict
    from ..models.registry import resolve_model

    card = resolve_model(model)
    source = volume
    if brain_mask is not None:
        if not brain_mask.same_grid(volume, atol=1e-3):
            raise ValueError("The brain mask is not on the scan's grid; resample it first.")
        source = volume.with_data(
            np.where(np.asarray(brain_mask.data) > 0, volume.data, 0).astype(np.asarray(volume.data).dtype)
        )
    pred = predict(card, source, device=device, progress=progress, cancel=cancel, notify=notify)
    labels = pred.primary
    infos = label_infos(card)
    names = {lab.value: lab.name for lab in infos}
    regions = region_volumes(labels, infos)
    labels.name = f"{volume.name}_parcellation"
    labels.meta["label_names"] = names
    return Parcellation(labels, regions, names)


def region_volumes(labels: Volume, infos: list[LabelInfo]) -> list[dict[str, Any]]:
    """One row per label present (not 0): label, name, color, voxels, volume_ml.

    Example:
        >>> rows = region_volumes(parc.labels, card.labels)  # doctest: +SKIP
        >>> rows[0]["volume_ml"]
        2.6
    """
    names = {lab.value: lab.name for lab in infos}
    colors = {lab.value: list(lab.color) for lab in infos}
    counts = np.bincount(np.asarray(labels.data).ravel().astype(np.int64))
    return [
        {
            "label": int(v),
            "name": names.get(int(v), str(v)),
            "color": colors.get(int(v), [128, 128, 128]),
            "voxels": int(n),
            "volume_ml": round(float(n) * labels.voxel_volume_ml, 3),
        }
        for v, n in enumerate(counts)
        if v > 0 and n > 0
    ]


def label_infos(card: ModelCard) -> list[LabelInfo]:
    """Label names: colormap.json beside the weights (as distributed) wins, else the card's table."""
    if card.weights_path is not None:
        colormap = Path(card.weights_path).parent / "colormap.json"
        if colormap.is_file():
            return labels_from_colormap(colormap)
    return list(card.labels)
