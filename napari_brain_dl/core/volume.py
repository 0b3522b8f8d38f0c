"""The `Volume` type and geometry helpers.

A `Volume` is a 3D array plus the affine that maps voxel indices (i, j, k) to
world millimetres in RAS+ (nibabel's convention). Everything in the package
passes Volumes around so the affine is never lost.

Reorientation helpers here are pure axis permutations and flips: they are
exactly invertible, so data shown or computed in another orientation comes
back onto the native grid voxel for voxel.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import nibabel as nib
import numpy as np
from nibabel import orientations as ornt_

#: Display orientation for an axial, radiological view in napari: axis 0 runs
#: inferior -> superior (slider), rows run anterior -> posterior (top to
#: bottom), columns run patient right -> left (patient left on screen right).
DISPLAY_AXCODES: tuple[str, str, str] = ("S", "P", "L")


@dataclass
class Volume:
    """A 3D image on a known grid.

    Attributes:
        data: 3D array indexed (i, j, k).
        affine: 4x4 voxel -> RAS+ world (mm) matrix.
        name: Short display name (e.g. "t1c").
        meta: Source metadata (path, format, header notes, provenance).
        warnings: Plain-language notes about the data (NaN voxels, header conflicts).

    Example:
        >>> v = Volume(np.zeros((4, 5, 6), np.float32), np.diag([2.0, 2.0, 3.0, 1.0]))
        >>> v.spacing, v.axcodes
        ((2.0, 2.0, 3.0), 'RAS')
    """

    data: np.ndarray
    affine: np.ndarray
    name: str = "image"
    meta: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.affine.shape != (4, 4):
            raise ValueError(f"{self.name}: the affine must be 4x4, got {self.affine.shape}.")
        if np.asarray(self.data).ndim != 3:
            raise ValueError(f"{self.name}: a 3D volume is needed, got {np.asarray(self.data).ndim}D data.")

    @property
    def shape(self) -> tuple[int, int, int]:
        """Voxel grid shape."""
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along i, j, k (column norms of the affine)."""
        return tuple(float(s) for s in voxel_spacing(self.affine))  # type: ignore[return-value]

    @property
    def axcodes(self) -> str:
        """Orientation letters, e.g. "LPS": where i, j, k point in the patient."""
        return "".join(nib.aff2axcodes(self.affine))

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres."""
        return float(abs(np.linalg.det(self.affine[:3, :3]))) / 1000.0

    def with_data(self, data: np.ndarray, name: str | None = None, **meta: Any) -> Volume:
        """A new Volume on the same grid with other data (e.g. a model result)."""
        if tuple(data.shape) != self.shape:
            raise ValueError(f"Result shape {tuple(data.shape)} does not match the grid {self.shape}.")
        return replace(self, data=data, name=name or self.name,
                       meta={**self.meta, **meta}, warnings=[])

    def same_grid(self, other: Volume, atol: float = 1e-4) -> bool:
        """True when both volumes share shape and affine (within `atol` mm)."""
        return self.shape == other.shape and np.allclose(self.affine, other.affine, atol=atol)

    def info(self, include_identifiers: bool = False) -> dict[str, Any]:
        """JSON-ready summary of the geometry.

        Free-text header fields (``meta["header_text"]``: SeriesDescription, NIfTI descrip...)
        may identify the patient: they are added only with `include_identifiers`.
        """
        summary = {
            "name": self.name,
            "shape": list(self.shape),
            "spacing": [round(s, 6) for s in self.spacing],
            "axcodes": self.axcodes,
            "affine": self.affine.tolist(),
            "dtype": str(self.data.dtype),
            "warnings": list(self.warnings),
            **{k: v for k, v in self.meta.items() if isinstance(v, (str, int, float, bool))},
        }
        if include_identifiers and self.meta.get("header_text"):
            summary["header_text"] = dict(self.meta["header_text"])
        return summary


def voxel_spacing(affine: np.ndarray) -> np.ndarray:
    """Voxel sizes (mm) along each voxel axis of `affine`."""
    return np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))


def orientation_transform(affine: np.ndarray, axcodes: tuple[str, str, str]) -> np.ndarray:
    """nibabel orientation transform taking a grid with `affine` to `axcodes`."""
    return ornt_.ornt_transform(ornt_.io_orientation(affine), ornt_.axcodes2ornt(axcodes))


def reorient(volume: Volume, axcodes: tuple[str, str, str] = DISPLAY_AXCODES) -> tuple[Volume, np.ndarray]:
    """Permute/flip axes so the volume's voxel axes point along `axcodes`.

    Returns the reoriented Volume (data is a numpy view, no copy) and the
    transform needed by `restore_orientation` to go back exactly. Oblique
    rotations stay in the affine, so world coordinates are unchanged.

    Example:
        >>> v = Volume(np.zeros((3, 4, 5)), np.diag([-1.0, -1.0, 1.0, 1.0]))  # LPS
        >>> r, t = reorient(v, ("R", "A", "S"))
        >>> r.axcodes, r.shape
        ('RAS', (3, 4, 5))
    """
    transform = orientation_transform(volume.affine, axcodes)
    data = ornt_.apply_orientation(volume.data, transform)
    affine = volume.affine @ ornt_.inv_ornt_aff(transform, volume.shape)
    return replace(volume, data=data, affine=affine), transform


def restore_orientation(data: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Undo `reorient` on an array computed in the reoriented frame (exact, a view)."""
    return ornt_.apply_orientation(data, invert_orientation(transform))


def invert_orientation(transform: np.ndarray) -> np.ndarray:
    """The nibabel orientation transform that undoes `transform`."""
    transform = np.asarray(transform)
    inverse = np.empty_like(transform)
    for axis, (new_axis, flip) in enumerate(transform):
        inverse[int(new_axis)] = (axis, flip)
    return inverse
