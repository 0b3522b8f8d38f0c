"""Export label maps for use elsewhere: NIfTI on the native grid, or DICOM SEG.

Both writers are atomic (a temporary file renamed into place) and refuse to
replace an existing file unless ``overwrite=True``.

DICOM SEG frames must match the source slices exactly. A Volume loaded from a
DICOM folder holds voxel (i, j, k) = column i, row j of file k of
``meta["dicom_files"]`` (SimpleITK's order; only the affine is flipped LPS ->
RAS, never the data). Rather than trusting that, the slice geometry is rebuilt
from the files' own ImagePositionPatient / ImageOrientationPatient /
PixelSpacing, the labels are brought onto it (exact axis permutation and flips
only) and the affines are compared before anything is written.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from . import io
from .dicom import LPS_TO_RAS
from .extras import require
from .volume import Volume, reorient

DEFAULT_DESCRIPTION = "napari-brain-dl labels"

#: Patient identifiers emptied in a DICOM SEG unless ``keep_identifiers=True`` (Type 2 attributes
#: stay present but empty; the study and frame-of-reference UIDs that link the SEG are kept).
PATIENT_IDENTIFIERS = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber",
                       "ReferringPhysicianName", "StudyID")
#: Optional identifying attributes removed outright unless ``keep_identifiers=True``.
OPTIONAL_IDENTIFIERS = ("OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames",
                        "IssuerOfPatientID", "PatientBirthName", "PatientMotherBirthName",
                        "PatientAddress", "PatientTelephoneNumbers", "MedicalRecordLocator",
                        "InstitutionName", "InstitutionAddress", "OperatorsName", "PerformingPhysicianName")


def save_labels_nifti(labels: Volume, reference: Volume, path: str | os.PathLike[str], *,
                      overwrite: bool = False, description: str = DEFAULT_DESCRIPTION) -> Path:
    """Write `labels` as uint8 NIfTI with the exact shape and affine of `reference` (native grid).

    Labels on another grid are brought across exactly when it is the same grid in
    another orientation, else resampled through world coordinates with nearest
    neighbour. qform and sform both hold the reference affine. `description` goes
    in the header's descrip field (cut to 79 characters).

    Raises:
        ValueError: Not a .nii/.nii.gz path, or labels that are not integers 0-255.
        FileExistsError: `path` exists and `overwrite` is False.
        FileNotFoundError / PermissionError: The output folder is missing or read-only.

    Example:
        >>> save_labels_nifti(seg, t1c, "seg.nii.gz")  # doctest: +SKIP
    """
    path = Path(path)
    if io.suffix_of(path) not in (".nii", ".nii.gz"):
        raise ValueError(f"Cannot write {path.name} as NIfTI: the name must end in .nii or .nii.gz.")
    data = _label_array(labels)
    if data.size and (data.min() < 0 or data.max() > 255):
        raise ValueError(f"{labels.name}: label values span {int(data.min())} to {int(data.max())}; "
                         "NIfTI export stores uint8 labels (0-255).")
    on_grid = _exact_onto(labels.with_data(data), reference)
    if on_grid is None:
        from .study import resample_to

        on_grid = resample_to(labels.with_data(data), reference, labels=True)
    codes = {k: reference.meta[k] for k in ("sform_code", "qform_code") if reference.meta.get(k)}
    out = Volume(np.asarray(on_grid.data).astype(np.uint8), reference.affine.copy(), name=labels.name,
                 meta=codes)
    return io.save(out, path, overwrite=overwrite, description=description)


def save_dicom_seg(labels: Volume, source: Volume, path: str | os.PathLike[str], *,
                   label_names: Mapping[int, str], overwrite: bool = False,
                   algorithm_name: str = "napari-brain-dl", algorithm_version: str | None = None,
                   algorithm_type: str = "AUTOMATIC",
                   property_codes: Mapping[int, tuple[Any, Any]] | None = None,
                   series_description: str = "Segmentation (napari-brain-dl)",
                   series_number: int = 901, keep_identifiers: bool = False) -> Path:
    """Write `labels` as a binary DICOM SEG referencing the DICOM series `source` was loaded from.

    One segment per label value present, named from `label_names`; frames that
    hold no label are left out. Study and frame-of-reference UIDs come from the
    source datasets, so viewers file the SEG with its series. Patient identifiers
    (name, ID, birth date, accession number, `PATIENT_IDENTIFIERS` and
    `OPTIONAL_IDENTIFIERS`) are left empty unless `keep_identifiers` is True.

    Args:
        labels: Integer label map on the grid of `source` (or the same grid reoriented).
        source: A Volume loaded from a DICOM folder (``meta["dicom_files"]``).
        path: Output file (conventionally .dcm).
        label_names: Label value -> segment name, for every value present.
        overwrite: Replace an existing file.
        algorithm_name: Algorithm name recorded in each segment.
        algorithm_version: Its version (default: this package's version).
        algorithm_type: "AUTOMATIC", "SEMIAUTOMATIC" (edited by a person) or "MANUAL".
        property_codes: Label value -> (category, type) codes, overriding the defaults
            chosen from the segment name (SNOMED CT: Necrosis, Edema, Neoplasm, Brain, Tissue).
        series_description: SeriesDescription of the new series.
        series_number: SeriesNumber of the new series.
        keep_identifiers: Copy the source's patient identifiers into the SEG (as highdicom
            does); by default they are emptied so the file can leave the hospital.

    Raises:
        ValueError: Source not loaded from DICOM, irregular slices, labels on another
            grid, empty labels, unnamed label values, or non-integer labels.
        FileExistsError: `path` exists and `overwrite` is False.

    Example:
        >>> t1 = load("dicom_t1_axial")  # doctest: +SKIP
        >>> save_dicom_seg(seg, t1, "seg.dcm", label_names={1: "tumour"})  # doctest: +SKIP
    """

    hd = require("highdicom")
    from pydicom.sr.codedict import codes  # pydicom comes with highdicom

    files = source.meta.get("dicom_files")
    if not files:
        raise ValueError(f"{source.name} was not loaded from a DICOM series, so a DICOM SEG cannot "
                         "reference it; load the DICOM folder, or export NIfTI instead.")
    kind = str(algorithm_type).upper()
    if kind not in ("AUTOMATIC", "SEMIAUTOMATIC", "MANUAL"):
        raise ValueError(f"algorithm_type must be AUTOMATIC, SEMIAUTOMATIC or MANUAL, not {algorithm_type}.")
    data = _label_array(labels)
    on_source = _exact_onto(labels.with_data(data), source)
    if on_source is None:
        raise ValueError(
            f"The labels ({_grid_text(labels)}) are not on the grid of {source.name} ({_grid_text(source)}); "
            "resample them onto the DICOM series first (nearest neighbour).")
    values = [int(v) for v in np.unique(data[data != 0])]
    if not values:
        raise ValueError(f"{labels.name} holds no labelled voxels: there is nothing to export.")
    if values[0] < 0:
        raise ValueError(f"{labels.name} has negative label values; segments need positive integers.")
    unnamed = [v for v in values if not str(label_names.get(v, "")).strip()]
    if unnamed:
        raise ValueError(f"Label values {unnamed} have no name in label_names; name every value present.")

    with io.atomic_output(path, overwrite=overwrite) as tmp:  # checks the target before the work
        datasets = [_read_dataset(f) for f in files]
        native = _dicom_affine(datasets, source.name)
        frames = _onto_native(on_source, native, datasets, source.name)  # (slices, rows, columns)
        lut = np.zeros(max(values) + 1, dtype=np.uint16 if len(values) > 255 else np.uint8)
        lut[values] = np.arange(1, len(values) + 1)
        algorithm = None if kind == "MANUAL" else hd.AlgorithmIdentificationSequence(
            name=algorithm_name, family=codes.cid7162.ArtificialIntelligence,
            version=algorithm_version or _package_version())
        descriptions = []
        for number, value in enumerate(values, 1):
            name = str(label_names[value]).strip()
            category, prop = (property_codes or {}).get(value) or _default_codes(name)
            descriptions.append(hd.seg.SegmentDescription(
                segment_number=number, segment_label=name[:64], segmented_property_category=category,
                segmented_property_type=prop, algorithm_type=kind, algorithm_identification=algorithm))
        with warnings.catch_warnings():  # highdicom's style notes on the source's PatientName
            warnings.filterwarnings("ignore", message=".*intended person name", category=UserWarning)
            seg = hd.seg.Segmentation(
                source_images=datasets, pixel_array=lut[frames],
                segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=descriptions, series_instance_uid=hd.UID(),
                series_number=series_number, sop_instance_uid=hd.UID(), instance_number=1,
                manufacturer="napari-brain-dl", manufacturer_model_name=algorithm_name[:64],
                software_versions=_package_version(), device_serial_number="0",
                series_description=series_description[:64], content_label="SEGMENTATION",
                content_description=f"{len(values)} segments by {algorithm_name}"[:64])
        if not keep_identifiers:
            _strip_identifiers(seg)
        seg.save_as(str(tmp))
    return Path(path)


def _strip_identifiers(dataset: Any) -> None:
    """Empty the patient identifiers of `dataset` (Type 2 kept present) and drop optional ones."""
    for keyword in PATIENT_IDENTIFIERS:
        if keyword in dataset:
            setattr(dataset, keyword, "")
    for keyword in OPTIONAL_IDENTIFIERS:
        if keyword in dataset:
            delattr(dataset, keyword)


def _package_version() -> str:

    return str(__version__)


def _grid_text(volume: Volume) -> str:
    spacing = "x".join(f"{s:.3g}" for s in volume.spacing)
    return f"shape {volume.shape}, {spacing} mm, {volume.axcodes}"


def _label_array(labels: Volume) -> np.ndarray:
    """Labels as an integer array; refuses fractional values."""
    data = np.asarray(labels.data)
    if data.dtype == bool:
        return data.astype(np.uint8)
    if np.issubdtype(data.dtype, np.integer):
        return data
    if not np.all(np.isfinite(data)) or not np.array_equal(data, np.rint(data)):
        raise ValueError(f"{labels.name} holds fractional values; a label map of integers is needed.")
    return data.astype(np.int32)


def _exact_onto(labels: Volume, reference: Volume) -> Volume | None:
    """`labels` on `reference`'s grid without interpolation (same grid, possibly reoriented), else None."""
    if labels.same_grid(reference):
        return labels
    axcodes = tuple(reference.axcodes)
    moved, _ = reorient(labels, axcodes)  # type: ignore[arg-type]
    return moved if moved.same_grid(reference) else None


def _read_dataset(file_name: str) -> Any:
    import pydicom

    return pydicom.dcmread(file_name, stop_before_pixels=True)  # headers are all a SEG needs


def _dicom_affine(datasets: list[Any], name: str) -> np.ndarray:
    """RAS+ affine of the slices in the given order, from their own headers."""
    first = datasets[0]
    orientation = np.asarray(first.ImageOrientationPatient, dtype=np.float64)
    pixel = [float(v) for v in first.PixelSpacing]  # (between rows, between columns)
    for ds in datasets:
        same = (np.allclose(np.asarray(ds.ImageOrientationPatient, float), orientation, atol=1e-4)
                and np.allclose([float(v) for v in ds.PixelSpacing], pixel, atol=1e-4)
                and (ds.Rows, ds.Columns) == (first.Rows, first.Columns))
        if not same:
            raise ValueError(f"{name}: the DICOM slices differ in orientation, pixel size or matrix size.")
    positions = np.asarray([ds.ImagePositionPatient for ds in datasets], dtype=np.float64)
    step = (positions[-1] - positions[0]) / (len(datasets) - 1)
    expected = positions[0] + np.arange(len(datasets))[:, None] * step
    if np.abs(positions - expected).max() > 0.05 * np.linalg.norm(step) + 1e-3:
        raise ValueError(f"{name}: the DICOM slices are not evenly spaced; a SEG cannot be aligned to them.")
    lps = np.eye(4)
    lps[:3, 0] = orientation[:3] * pixel[1]
    lps[:3, 1] = orientation[3:] * pixel[0]
    lps[:3, 2] = step
    lps[:3, 3] = positions[0]
    return LPS_TO_RAS @ lps


def _onto_native(labels: Volume, native: np.ndarray, datasets: list[Any], name: str) -> np.ndarray:
    """Label frames (slice, row, column) in the order of `datasets`, checked against their geometry."""
    first = datasets[0]
    reference = Volume(np.zeros((1, 1, 1), np.uint8), native)
    moved, _ = reorient(labels, tuple(reference.axcodes))  # type: ignore[arg-type]
    shape = (int(first.Columns), int(first.Rows), len(datasets))
    # Positions in DICOM carry limited decimals: allow a tenth of a voxel in the affine.
    tolerance = 0.1 * float(min(np.sqrt((native[:3, :3] ** 2).sum(axis=0))))
    if moved.shape != shape or not np.allclose(moved.affine, native, atol=tolerance):
        raise ValueError(f"{name}: the volume does not match the geometry of its DICOM files "
                         f"(ImagePositionPatient / ImageOrientationPatient); it may have been "
                         "reoriented or resampled after loading.")
    return np.ascontiguousarray(np.asarray(moved.data).transpose(2, 1, 0))


def _default_codes(name: str) -> tuple[Any, Any]:
    """(SegmentedPropertyCategory, SegmentedPropertyType) guessed from a segment name (SNOMED CT)."""
    from pydicom.sr.codedict import codes

    text = name.lower()
    abnormal = codes.cid7150.MorphologicallyAbnormalStructure
    if "necro" in text:
        return abnormal, codes.SCT.Necrosis
    if "edema" in text or "oedema" in text or "snfh" in text:
        return abnormal, codes.SCT.Edema
    if any(word in text for word in ("tumo", "neoplas", "enhanc", "core", "lesion", "mass", "glioma")):
        return abnormal, codes.SCT.Neoplasm
    if "brain" in text:
        return codes.cid7150.AnatomicalStructure, codes.SCT.Brain
    return codes.cid7150.Tissue, codes.SCT.Tissue
