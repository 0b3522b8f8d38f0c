"""An exam: several contrasts of one patient on one reference grid.

Series already on the reference grid are kept as they are (no interpolation).
Others are resampled through world coordinates, or rigidly co-registered with
SimpleITK (Mattes mutual information) when the user asks or when the headers
say the series live in different spaces (different DICOM frames of reference or
NIfTI sform codes, or fields of view that barely overlap).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import io
from .progress import CancelToken, ProgressCallback, check, no_progress
from .volume import Volume, reorient

CONTRASTS = ("t1", "t1c", "t2", "flair", "pd", "mra", "dwi", "other")

# Order matters: the first pattern that matches wins ("t1c" before "t1", "t2f" = FLAIR).
_CONTRAST_PATTERNS: tuple[tuple[str, str], ...] = (
    ("flair", r"flair|t2f\b|t2[-_ ]?flair|dark[-_ ]?fluid"),
    ("t1c", r"t1c|t1ce|t1[-_ ]?gd|gad|t1[-_ ]?post|contrast|mprage[-_ ]?post|\bce[-_ ]?t1"
            r"|t1w?[-_ ]?c\b|mr_gd"),
    ("t2", r"t2w?\b|t2[-_ ]|t2$|tse|haste"),
    ("t1", r"t1n|t1w?\b|t1[-_ ]|t1$|mprage|spgr|bravo|t1_crop"),
    ("pd", r"\bpd\b|pd[-_ ]|_pd|proton"),
    ("mra", r"mra|tof|angio"),
    ("dwi", r"dwi|adc|diffusion|trace"),
)


def guess_contrast(path_or_name: str) -> str:
    """Guess the contrast from a file name or series description.

    Example:
        >>> [guess_contrast(n) for n in ("t2f.nii.gz", "sub-01_T1w.nii", "T1c_subtrMeanDivStd", "chris_PD")]
        ['flair', 't1', 't1c', 'pd']
    """
    name = Path(str(path_or_name)).name.lower()
    name = re.sub(r"\.(nii|gz|mgz|mgh|nrrd|nhdr|mha|mhd|dcm)$", "", name)
    name = re.sub(r"\.(nii|gz|mgz|mgh|nrrd|nhdr|mha|mhd|dcm)$", "", name)
    for contrast, pattern in _CONTRAST_PATTERNS:
        if re.search(pattern, name):
            return contrast
    return "other"


@dataclass
class Study:
    """Contrasts of one exam, all on the reference grid.

    Attributes:
        volumes: contrast -> Volume on the reference grid (same shape and affine).
        reference: Contrast whose grid the others were put on.
        natives: contrast -> Volume as loaded from disk.
        alignment: contrast -> "reference", "same grid", "resampled" or "registered (rigid)".
    """

    volumes: dict[str, Volume]
    reference: str
    natives: dict[str, Volume] = field(default_factory=dict)
    alignment: dict[str, str] = field(default_factory=dict)

    @property
    def grid(self) -> Volume:
        """The reference volume (its shape and affine define the exam grid)."""
        return self.volumes[self.reference]


def unique_names(names: Sequence[str]) -> list[str]:
    """Make contrast names unique: ["t1", "t1"] -> ["t1", "t1_2"]."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return out


def load_study(paths: Sequence[str | Path], contrasts: Sequence[str] | None = None,
               reference: str | None = None, register: bool | None = None,
               progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> Study:
    """Load several series and put them on one reference grid.

    Args:
        paths: Files or DICOM folders, one per series.
        contrasts: Names for each path (default: guessed from file names).
        reference: Contrast whose grid is used (default: the first series).
        register: True to co-register rigidly, False never, None to decide from headers.

    Example:
        >>> study = load_study(["t1c.nii.gz", "t2f.nii.gz"])  # doctest: +SKIP
        >>> study.volumes["flair"].same_grid(study.volumes["t1c"])
        True
    """
    progress = progress or no_progress
    names = unique_names(list(contrasts) if contrasts else [guess_contrast(str(p)) for p in paths])
    if len(names) != len(paths):
        raise ValueError(f"{len(paths)} files but {len(names)} contrast names were given.")
    volumes: dict[str, Volume] = {}
    for i, (name, path) in enumerate(zip(names, paths, strict=True)):
        check(cancel)
        progress(i, len(paths) * 2, f"Loading {Path(path).name}")
        volumes[name] = io.load(path, name=name)
    return align_study(volumes, reference, register, progress=progress, cancel=cancel)


def align_study(volumes: dict[str, Volume], reference: str | None = None, register: bool | None = None,
                progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> Study:
    """Put every volume on the reference volume's grid (see module docstring)."""
    if not volumes:
        raise ValueError("An exam needs at least one series.")
    progress = progress or no_progress
    reference = reference or next(iter(volumes))
    if reference not in volumes:
        raise ValueError(f"The reference {reference!r} is not one of the series: {', '.join(volumes)}.")
    ref = volumes[reference]
    study = Study(volumes={}, reference=reference, natives=dict(volumes))
    total = len(volumes) * 2
    for i, (name, vol) in enumerate(volumes.items()):
        check(cancel)
        step = len(volumes) + i
        if name == reference:
            study.volumes[name], study.alignment[name] = ref, "reference"
        elif vol.same_grid(ref, atol=1e-3):
            study.volumes[name], study.alignment[name] = vol, "same grid"
        elif register if register is not None else needs_registration(ref, vol):
            progress(step, total, f"Registering {name} to {reference} (rigid)")
            study.volumes[name] = register_rigid(vol, ref, cancel=cancel)
            study.alignment[name] = "registered (rigid)"
        else:
            progress(step, total, f"Resampling {name} onto the {reference} grid")
            study.volumes[name] = resample_to(vol, ref)
            study.alignment[name] = "resampled"
    progress(total, total, "Exam ready")
    return study


def needs_registration(reference: Volume, moving: Volume) -> bool:
    """True when headers say the two series are not in one space.

    Different DICOM frames of reference, different non-zero NIfTI sform codes
    (scanner vs MNI, say), or fields of view overlapping less than half.
    """
    for key in ("frame_of_reference_uid", "sform_code"):
        a, b = reference.meta.get(key), moving.meta.get(key)
        if a and b and a != b:
            return True
    return fov_overlap(reference, moving) < 0.5


def world_bounds(volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned world (RAS mm) bounding box of the voxel grid."""
    corners = np.array(np.meshgrid(*[[0, s - 1] for s in volume.shape], indexing="ij")).reshape(3, -1)
    world = volume.affine[:3, :3] @ corners + volume.affine[:3, 3:4]
    return world.min(axis=1), world.max(axis=1)


def fov_overlap(a: Volume, b: Volume) -> float:
    """Overlap of the two world bounding boxes as a fraction of the smaller one."""
    (alo, ahi), (blo, bhi) = world_bounds(a), world_bounds(b)
    inter = np.clip(np.minimum(ahi, bhi) - np.maximum(alo, blo), 0, None).prod()
    smaller = min((ahi - alo).clip(1e-6).prod(), (bhi - blo).clip(1e-6).prod())
    return float(inter / smaller)


def is_label_image(volume: Volume) -> bool:
    """Integer data with few distinct values (a segmentation): resample it with nearest neighbour."""
    data = volume.data
    if not (np.issubdtype(data.dtype, np.integer) or np.array_equal(data, np.round(data))):
        return False
    return np.unique(data[:: max(1, data.shape[0] // 32)]).size <= 64 and data.max() < 1024


def onto_reference(vol: Volume, ref: Volume, name: str, ref_name: str, notes: list[str],
                   hint: str = "register them first.") -> Volume:
    """`vol` on `ref`'s grid: as is when the grids agree, its voxels reordered exactly (noted) when
    the grids differ only by axis order or direction (e.g. LPS vs RAS of the same scan), else
    resampled (linear, noted) when they overlap.

    Raises:
        ValueError: The two cover different space (< 50 % overlap); `hint` says what to do.
    """
    if vol.same_grid(ref, atol=1e-3):
        return vol
    reordered, _ = reorient(vol, tuple(ref.axcodes))
    if reordered.same_grid(ref, atol=1e-3):
        notes.append(f"{name}'s voxel axes were reordered onto {ref_name}'s grid (exact, no interpolation).")
        return replace(reordered, data=np.ascontiguousarray(reordered.data), affine=ref.affine.copy())
    overlap = fov_overlap(vol, ref)
    if overlap < 0.5:
        raise ValueError(f"{name} ({vol.name}) and {ref_name} ({ref.name}) cover different parts of space "
                         f"({overlap:.0%} overlap): they do not look like one co-registered exam; {hint}")
    notes.append(f"{name} was resampled onto {ref_name}'s grid (linear interpolation).")
    return resample_to(vol, ref, labels=False)


def resample_to(moving: Volume, reference: Volume, transform: object | None = None,
                labels: bool | None = None) -> Volume:
    """Resample `moving` onto `reference`'s grid through world coordinates.

    Linear interpolation for images (float32 result), nearest neighbour for label maps
    (dtype kept). `transform` is an optional SimpleITK transform (reference -> moving, LPS).
    """
    import SimpleITK as sitk

    from .dicom import sitk_from_volume, volume_from_sitk

    labels = is_label_image(moving) if labels is None else labels
    data = moving.data if labels else np.asarray(moving.data, dtype=np.float32)
    interp = sitk.sitkNearestNeighbor if labels else sitk.sitkLinear
    out = sitk.Resample(sitk_from_volume(moving.with_data(data)), sitk_from_volume(reference.with_data(
        np.zeros(reference.shape, np.uint8))), transform or sitk.Transform(), interp, 0.0)
    result = volume_from_sitk(out, name=moving.name, meta={**moving.meta, "resampled_to": reference.name})
    result.affine = reference.affine.copy()  # identical grid, bit for bit
    return result


def register_rigid(moving: Volume, reference: Volume, cancel: CancelToken | None = None) -> Volume:
    """Rigidly co-register `moving` to `reference` (Mattes MI, 3 levels) and resample it."""
    import SimpleITK as sitk

    from .dicom import sitk_from_volume

    fixed = sitk.Cast(sitk_from_volume(reference.with_data(np.nan_to_num(
        np.asarray(reference.data, np.float32)))), sitk.sitkFloat32)
    moved = sitk.Cast(sitk_from_volume(moving.with_data(np.nan_to_num(
        np.asarray(moving.data, np.float32)))), sitk.sitkFloat32)
    initial = sitk.CenteredTransformInitializer(fixed, moved, sitk.Euler3DTransform(),
                                                sitk.CenteredTransformInitializerFilter.MOMENTS)
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.05, seed=7)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3, numberOfIterations=200)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([4, 2, 1])
    method.SetSmoothingSigmasPerLevel([2, 1, 0])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(initial, inPlace=False)
    check(cancel)
    transform = method.Execute(fixed, moved)
    check(cancel)
    result = resample_to(moving, reference, transform=transform)
    result.meta["registration"] = {"method": "rigid, Mattes mutual information",
                                   "metric": float(method.GetMetricValue()),
                                   "parameters": list(transform.GetParameters()) if hasattr(
                                       transform, "GetParameters") else []}
    return result
