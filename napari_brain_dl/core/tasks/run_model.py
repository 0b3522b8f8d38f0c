"""Run any model card on its inputs (the generic task behind `napari-brain-dl run`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..models.card import ModelCard
from ..progress import CancelToken, ProgressCallback
from ..volume import Volume


def run_model(
    model: str | Path | ModelCard,
    inputs: Volume | Sequence[Volume],
    *,
    device: str = "auto",
    params: dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    notify: Callable[[str], None] | None = None,
    allow_random_weights: bool = False,
) -> Any:
    """Run a model on inputs given in the card's order; outputs land on the first input's grid.

    Returns:
        `inference.Prediction`: ``outputs`` ({name: Volume}), ``primary`` and ``provenance``.

    Example:
        >>> names = ("t1c", "t1n", "t2w", "t2f")  # card order: T1c, T1, T2, FLAIR
        >>> vols = [load(f"brats_gli_00001/{c}.nii.gz") for c in names]  # doctest: +SKIP
        >>> pred = run_model("monai_bundles/brats_mri_segmentation", vols)  # doctest: +SKIP
        >>> list(pred.outputs)  # doctest: +SKIP
        ['labels']
    """
    from ..inference import get_model, predict

    loaded = get_model(model, device, allow_random_weights=allow_random_weights)
    return predict(
        loaded, inputs, device=device, params=params, progress=progress, cancel=cancel, notify=notify
    )
