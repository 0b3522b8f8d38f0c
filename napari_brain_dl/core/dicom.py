"""DICOM series folders and SimpleITK <-> Volume conversion (LPS <-> RAS, exact)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .headers import FREE_TEXT_KEY, itk_reason
from .volume import Volume

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

#: Header tags kept as series metadata. Patient identifiers are deliberately absent.
SERIES_TAGS = {
    "0008|0060": "modality",
    "0020|000e": "series_uid",
    "0020|000d": "study_uid",
    "0020|0052": "frame_of_reference_uid",
    "0018|0050": "slice_thickness",
    "0008|0070": "manufacturer",
}
#: Free-text tags (may hold names, IDs, dates): kept only in ``meta["header_text"]``.
FREE_TEXT_TAGS = {
    "0008|103e": "series_description",
    "0018|1030": "protocol_name",
}
#: Slice gaps may differ from the usual step by this many mm, or this fraction of it (the larger).
GAP_TOLERANCE_MM = 0.01
GAP_TOLERANCE_FRACTION = 0.01
#: Largest difference between direction cosines of two slices of one series.
ORIENTATION_TOLERANCE = 1e-3


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

    The Volume is named after the folder; free-text tags (SeriesDescription, ProtocolName) stay
    in ``meta["header_text"]``, and ``meta["series_contrast"]`` holds the contrast the description
    names ("t1", "flair"...; absent when none).

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
                             f"(mixed sizes or corrupt files: {itk_reason(exc)}).") from exc
    if image.GetNumberOfComponentsPerPixel() > 1 or image.GetDimension() != 3:
        raise ImageReadError(f"{folder}: series {uid} holds colour or multi-frame images; "
                             "a scalar 3D volume is needed.")
    meta: dict[str, Any] = {"path": str(folder.resolve()), "format": "DICOM", "dicom_files": files}
    for tag, key in SERIES_TAGS.items():
        if reader.HasMetaDataKey(0, tag):
            meta[key] = reader.GetMetaData(0, tag).strip()
    text = {key: reader.GetMetaData(0, tag).strip() for tag, key in FREE_TEXT_TAGS.items()
            if reader.HasMetaDataKey(0, tag) and reader.GetMetaData(0, tag).strip()}
    if text:
        meta[FREE_TEXT_KEY] = text
    contrast = _contrast(text.get("series_description", ""))
    if contrast:
        meta["series_contrast"] = contrast
    return volume_from_sitk(image, name=folder.name, meta=meta)


def _contrast(description: str) -> str | None:
    """The contrast a series description names (a fixed word such as "t1"), or None."""
    from .study import guess_contrast

    guess = guess_contrast(description.replace("/", " ")) if description else "other"
    return None if guess == "other" else guess


def _describe(file_name: str) -> str:
    """Series number, modality and contrast of a series' first file (no free text: no identifiers)."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(file_name)
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return "unreadable first file"

    def tag(key: str) -> str:
        return reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else ""

    parts = [f"series {tag('0020|0011')}" if tag("0020|0011") else "", tag("0008|0060"),
             _contrast(tag("0008|103e")) or ""]
    return ", ".join(p for p in parts if p) or "no description"


def _check_slice_positions(folder: Path, files: list[str]) -> None:
    """Refuse a series whose slices do not make one regular grid.

    Refused: two slices at one position (duplicated), a gap over 1.5 times the usual step
    (missing slices), any other gap differing from the usual step by more than
    `GAP_TOLERANCE_MM` or `GAP_TOLERANCE_FRACTION` of it, whichever is larger (uneven spacing),
    and slices whose row / column directions differ by more than `ORIENTATION_TOLERANCE`
    (mixed orientations). ITK would stack such slices at an averaged spacing, placing them wrongly.
    """
    import SimpleITK as sitk

    from .image_checks import ImageReadError

    positions, directions = [], []
    reader = sitk.ImageFileReader()
    for name in files:
        reader.SetFileName(name)
        try:
            reader.ReadImageInformation()
        except RuntimeError as exc:
            raise ImageReadError(f"{name} is not a readable DICOM file ({itk_reason(exc)}).") from exc
        directions.append(np.asarray(reader.GetDirection(), dtype=np.float64).reshape(3, 3))
        positions.append(np.asarray(reader.GetOrigin(), dtype=np.float64))
    turned = [i for i, d in enumerate(directions) if np.abs(d[:, :2] - directions[0][:, :2]).max()
              > ORIENTATION_TOLERANCE]
    if turned:
        raise ImageReadError(f"{folder}: {len(turned)} of {len(files)} slices have another orientation than "
                             f"the first (mixed orientations, e.g. {Path(files[turned[0]]).name}); "
                             "export one orientation per series.")
    offsets = [float(np.dot(p, directions[0][:, 2])) for p in positions]
    gaps = np.abs(np.diff(np.asarray(offsets)))
    if np.any(gaps < 1e-3):
        raise ImageReadError(f"{folder}: two slices share the same position (duplicated slices).")
    step = float(np.median(gaps))
    if np.any(gaps > 1.5 * step):
        where = int(np.argmax(gaps))
        raise ImageReadError(f"{folder}: slices are missing after position {offsets[where]:.2f} mm "
                             f"(gap {gaps[where]:.2f} mm, expected {step:.2f} mm).")
    tolerance = max(GAP_TOLERANCE_MM, GAP_TOLERANCE_FRACTION * step)
    uneven = np.abs(gaps - step) > tolerance
    if np.any(uneven):
        low, high = float(gaps.min()), float(gaps.max())
        raise ImageReadError(f"{folder}: the slices are unevenly spaced ({int(uneven.sum())} gaps "
                             f"differ from {step:.2f} mm, from {low:.2f} to {high:.2f} mm); "
                             "a regular grid is needed.")
