"""DICOM series folders and SimpleITK <-> Volume conversion (LPS <-> RAS, exact)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .volume import Volume

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

#: Header tags kept as series metadata. Patient identifiers are deliberately absent.
SERIES_TAGS = {
    "0008|0060": "modality",
    "0008|103e": "series_description",
    "0020|000e": "series_uid",
    "0020|000d": "study_uid",
    "0020|0052": "frame_of_reference_uid",
    "0018|0050": "slice_thickness",
    "0008|0070": "manufacturer",
}


def is_dicom_file(path: Path) -> bool:
    """True when `path` is a file with the DICOM preamble ("DICM" at byte 128)."""
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        head = fh.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def volume_from_sitk(image: Any, name: str = "image", meta: dict[str, Any] | None = None) -> Volume:
    """Convert a 3D SimpleITK image to a Volume; voxel (i, j, k) is ITK index (i, j, k)."""
    import SimpleITK as sitk

    data = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    return Volume(data, sitk_affine(image), name=name, meta=meta or {})


def sitk_affine(image: Any) -> np.ndarray:
    """RAS+ voxel -> world affine of a SimpleITK image."""
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.asarray(image.GetSpacing(), dtype=np.float64)
    lps[:3, 3] = image.GetOrigin()
    return LPS_TO_RAS @ lps


def sitk_from_volume(volume: Volume) -> Any:
    """Convert a Volume to a SimpleITK image with the same geometry (for resampling, writing)."""
    import SimpleITK as sitk

    data = np.asarray(volume.data)
    if data.dtype == bool:
        data = data.astype(np.uint8)
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))
    lps = LPS_TO_RAS @ volume.affine
    spacing = np.sqrt((lps[:3, :3] ** 2).sum(axis=0))
    image.SetSpacing(spacing.tolist())
    image.SetDirection((lps[:3, :3] / spacing).ravel().tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    return image


def list_series(folder: Path) -> dict[str, list[str]]:
    """Series instance UID -> sorted file names, for every series in `folder`."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    return {uid: list(reader.GetGDCMSeriesFileNames(str(folder), uid))
            for uid in reader.GetGDCMSeriesIDs(str(folder))}


def load_dicom_series(folder: Path, series_uid: str | None = None) -> Volume:
    """Read one DICOM series from `folder` into a Volume (RAS+ affine, no patient identifiers).

    Raises:
        ImageReadError: No series, several series and none chosen, missing slices,
            or slices of different sizes.
    """
    import SimpleITK as sitk

    from .io import ImageReadError, SeriesChoiceError, check_fits_in_memory

    series = list_series(folder)
    if not series:
        raise ImageReadError(f"{folder} holds no readable DICOM series.")
    if series_uid is None and len(series) > 1:
        described = [f"{uid} ({len(files)} files, {_describe(files[0])})" for uid, files in series.items()]
        raise SeriesChoiceError(f"{folder} holds {len(series)} DICOM series; choose one: "
                                + "; ".join(described), list(series))
    uid = series_uid or next(iter(series))
    if uid not in series:
        raise ImageReadError(f"{folder} has no DICOM series {uid}.")
    files = series[uid]
    if len(files) < 2:
        raise ImageReadError(f"{folder}: series {uid} has a single slice; a 3D volume is needed.")
    _check_slice_positions(folder, files)
    info = sitk.ImageFileReader()
    info.SetFileName(files[0])
    info.ReadImageInformation()
    check_fits_in_memory(folder, (*tuple(info.GetSize())[:2], len(files)), np.float32)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise ImageReadError(f"{folder}: the slices of series {uid} could not be stacked "
                             f"(mixed sizes or corrupt files: {str(exc).splitlines()[0]}).") from exc
    meta: dict[str, Any] = {"path": str(folder.resolve()), "format": "DICOM", "dicom_files": files}
    for tag, key in SERIES_TAGS.items():
        if reader.HasMetaDataKey(0, tag):
            meta[key] = reader.GetMetaData(0, tag).strip()
    name = meta.get("series_description") or folder.name
    return volume_from_sitk(image, name=str(name).replace(" ", "_"), meta=meta)


def _describe(file_name: str) -> str:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(file_name)
    reader.ReadImageInformation()
    tag = "0008|103e"
    return reader.GetMetaData(tag).strip() if reader.HasMetaDataKey(tag) else "no description"


def _check_slice_positions(folder: Path, files: list[str]) -> None:
    """Refuse series with missing or duplicated slices (uneven slice positions)."""
    import SimpleITK as sitk

    from .io import ImageReadError

    positions, normal = [], None
    reader = sitk.ImageFileReader()
    for name in files:
        reader.SetFileName(name)
        try:
            reader.ReadImageInformation()
        except RuntimeError as exc:
            raise ImageReadError(f"{name} is not a readable DICOM file.") from exc
        if normal is None:
            d = np.asarray(reader.GetDirection()).reshape(3, 3)
            normal = d[:, 2]
        positions.append(float(np.dot(reader.GetOrigin(), normal)))
    gaps = np.diff(np.asarray(positions))
    if np.any(np.abs(gaps) < 1e-3):
        raise ImageReadError(f"{folder}: two slices share the same position (duplicated slices).")
    step = np.median(np.abs(gaps))
    if np.any(np.abs(gaps) > 1.5 * step):
        where = int(np.argmax(np.abs(gaps)))
        raise ImageReadError(f"{folder}: slices are missing after position {positions[where]:.2f} mm "
                             f"(gap {abs(gaps[where]):.2f} mm, expected {step:.2f} mm).")
