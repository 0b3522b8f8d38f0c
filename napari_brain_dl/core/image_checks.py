"""What a scan must be before it becomes a `Volume`: its errors and the checks `io.load` runs.

Dimensions (3D, or one volume of a 4D series), one number per voxel (no RGB, vectors or 64-bit
integers beyond int32), and a usable geometry (the size limits are `io.check_fits_in_memory`).
Every refusal is an `ImageReadError`: one sentence naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import InputError
from .volume import Volume


class ImageReadError(InputError):
    """A file or folder could not be read as a 3D scan; the message says why."""


class SeriesChoiceError(ImageReadError):
    """The input holds several volumes or series; `choices` lists them."""

    def __init__(self, message: str, choices: list[str]) -> None:
        super().__init__(message)
        self.choices = choices


#: Voxel sizes outside this range (mm) are header errors, not scans.
SPACING_RANGE_MM = (1e-3, 500.0)


def check_geometry(path: str | os.PathLike[str], affine: np.ndarray) -> None:
    """Refuse a voxel-to-world affine that places no voxel sensibly (NaN, singular, absurd spacing).

    Raises:
        ImageReadError: One sentence naming `path` and what is wrong with its geometry.
    """
    matrix = np.asarray(affine, dtype=np.float64)[:3, :3]
    if not np.all(np.isfinite(affine)):
        raise ImageReadError(f"{path} has a voxel-to-world affine with NaN or infinite values; "
                             "its geometry is unusable.")
    spacing = np.sqrt((matrix**2).sum(axis=0))
    low, high = SPACING_RANGE_MM
    text = " x ".join(f"{s:g}" for s in spacing)
    if spacing.min() < low or spacing.max() > high:
        raise ImageReadError(f"{path} has an implausible voxel spacing of {text} mm "
                             f"(expected {low:g} to {high:g} mm); its header is wrong.")
    if abs(np.linalg.det(matrix / spacing)) < 1e-3:
        raise ImageReadError(f"{path} has a singular voxel-to-world affine (two voxel axes point the "
                             "same way); its geometry is unusable.")


def check_scalar_voxels(path: Path, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    """Refuse colour (RGB24 / RGBA32) voxels, and vectors or matrices per voxel (NIfTI's 5th axis)."""
    if dtype.fields or dtype.kind not in "biufc":
        raise ImageReadError(f"{path} holds colour (RGB) or compound voxels; "
                             "a scalar 3D volume (one number per voxel) is needed.")
    if len(shape) > 4 and any(s > 1 for s in shape[4:]):
        raise ImageReadError(f"{path} holds {int(np.prod(shape[4:]))} values per voxel (a vector or matrix "
                             "image); a scalar 3D volume (one number per voxel) is needed.")


def check_shape(path: Path, shape: tuple[int, ...], volume_index: int | None) -> int | None:
    """Validate dimensionality; return the 4D index to take, if any."""
    dims = [s for s in shape[3:] if s != 1]
    if len(shape) < 3 or min(shape[:3]) < 2:
        raise ImageReadError(f"{path} is a 2D image {shape}; a 3D volume is needed.")
    if len(dims) > 1:
        raise ImageReadError(f"{path} has {len(shape)} dimensions {shape}; only 3D and 4D are supported.")
    if not dims:
        return 0 if len(shape) > 3 else None
    count = dims[0]
    if volume_index is None:
        raise SeriesChoiceError(
            f"{path} is a 4D series of {count} volumes; choose one (0 to {count - 1}).",
            [str(i) for i in range(count)])
    if not 0 <= volume_index < count:
        raise ImageReadError(f"{path}: volume {volume_index} does not exist (0 to {count - 1}).")
    return volume_index


def storable(data: np.ndarray, path: str | os.PathLike[str]) -> np.ndarray:
    """`data`, with 64-bit integers narrowed to int32 when every value fits (lossless).

    Few tools read 64-bit integer NIfTI, and nibabel refuses to write it by default.

    Raises:
        ValueError: 64-bit integers beyond the int32 range; one sentence naming `path`.
    """
    data = np.asarray(data)
    if data.dtype.kind not in "iu" or data.dtype.itemsize < 8:
        return data
    info = np.iinfo(np.int32)
    if data.size and (int(data.min()) < info.min or int(data.max()) > info.max):
        raise ImageReadError(f"{path} holds 64-bit integer voxels beyond the 32-bit range "
                             f"({int(data.min())} to {int(data.max())}); convert it to float first.")
    return data.astype(np.int32)


def note_bad_values(volume: Volume) -> None:
    """Refuse complex voxels; add a warning for NaN / infinite voxels and for an empty or flat image."""
    data = volume.data
    if np.issubdtype(data.dtype, np.complexfloating):
        raise ImageReadError(f"{volume.meta.get('path', volume.name)} holds complex voxels; "
                             "a magnitude image is needed.")
    if np.issubdtype(data.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(data)))
        if bad:
            volume.warnings.append(f"{bad} voxels are NaN or infinite; they are treated as 0 by models.")
    finite = data[np.isfinite(data)] if np.issubdtype(data.dtype, np.floating) else data
    if not np.any(finite):
        volume.warnings.append("Every voxel is zero (or NaN): the image is empty.")
    elif finite.min() == finite.max():
        volume.warnings.append(f"Every voxel has the same value ({finite.min():g}): the image holds "
                               "no contrast.")
