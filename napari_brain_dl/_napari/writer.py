"""npe2 writers: image and labels layers -> NIfTI on the source's native grid.

A layer made by this plugin carries its source affine and orientation
transform (see `layers.py`): the data is put back in the source's voxel order
and written with the source's exact affine. Labels are written as uint8
(uint16 when more than 255 labels). An existing file is never overwritten.
A synthetic image keeps its stamp: "_synthetic" is added to the file name when
missing, and the NIfTI description and intent name say SYNTHETIC.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..core.io import save, suffix_of
from ..core.synthetic import is_synthetic, save_synthetic, synthetic_file_name
from .layers import as_label_array, layer_to_volume


def _target(path: str, synthetic: bool = False) -> Path:
    if suffix_of(path) not in (".nii", ".nii.gz"):
        path = f"{path}.nii.gz"
    target = synthetic_file_name(path) if synthetic else Path(path)
    if target.exists():
        raise FileExistsError(f"{target.name} already exists; choose another name "
                              "(napari-brain-dl never overwrites a scan or label file).")
    return target


def write_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write an image layer as NIfTI on its source grid (exact affine, same dtype).

    Example:
        >>> viewer.layers["t1c"].save("t1c_copy.nii.gz", plugin="napari-brain-dl")  # doctest: +SKIP
    """
    volume = layer_to_volume(data, meta)
    synthetic = is_synthetic(volume) or bool((meta.get("metadata") or {}).get("synthetic"))
    target = _target(path, synthetic)
    volume = volume.with_data(np.ascontiguousarray(volume.data))
    if synthetic:
        volume.meta["synthetic"] = True
        save_synthetic(volume, target)
    else:
        save(volume, target)
    return [str(target)]


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a labels layer as uint8/uint16 NIfTI on its source grid (exact affine)."""
    target = _target(path)
    volume = layer_to_volume(data, meta)
    labels = as_label_array(np.ascontiguousarray(volume.data))
    if labels.dtype == np.int32:
        raise ValueError("Labels must be between 0 and 65535 to be saved as a label file.")
    save(volume.with_data(labels), target, description="labels (napari-brain-dl)")
    return [str(target)]
