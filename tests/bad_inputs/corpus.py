"""The bad-input corpus, generated into a folder by the tests themselves (nothing downloaded).

`build_corpus(folder)` writes one small file (or DICOM folder) per case and returns the cases.
Each `Case` says what the product must do with it:

- ``refuse``: exit code 3 (a notification in napari) and one sentence naming the file;
- ``warn``: accepted, with a sentence about the problem (NaN voxels, conflicting headers);
- ``accept``: a valid if unusual scan (int8, float64, an oblique or flipped affine).

The base scan is a 24 x 24 x 20 "head" (an ellipsoid with a brighter blob) at 6 x 6 x 7 mm, so it
spans 144 x 144 x 140 mm like a real head while every model runs on it in a fraction of a second.
`ROWS` collects (case, command, outcome, message) for the table printed at the end of the session.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

SHAPE = (24, 24, 20)
SPACING = (6.0, 6.0, 7.0)
ROWS: list[tuple[str, str, str, str]] = []  # (case, where, outcome, message)


@dataclass(frozen=True)
class Case:
    """One corpus entry: `path` is what the user passes, `problem` a word the message must hold.

    `expect` (refuse | warn | accept) is what a brain-model command must do; `io` and `generic`
    override it for info/convert and for models that know nothing of anatomy (run, skullstrip with
    a card). `pair` says what a two-contrast command gets beside it: "good" (the valid base scan),
    "self" (the case twice: its own grid) or "second" (the case goes second, after the base scan).
    """

    name: str
    path: Path
    expect: str
    problem: str
    io: str | None = None
    generic: str | None = None
    pair: str = "good"
    paired_only: bool = False

    def expectation(self, group: str) -> str:
        """refuse | warn | accept for a command group: io, generic or brain."""
        return {"io": self.io, "generic": self.generic}.get(group) or self.expect

    @property
    def names(self) -> tuple[str, str]:
        """The file (or folder) name and the stem a message may use to name it."""
        name = self.path.name
        return name, name.removesuffix(".gz").rsplit(".", 1)[0]


def base_affine(spacing: tuple[float, float, float] = SPACING) -> np.ndarray:
    """LPS-ish affine centred on the origin."""
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    affine[:3, 3] = [s * n / 2 for s, n in zip(spacing, SHAPE, strict=True)] * np.array([1, 1, -1])
    return affine


def head(dtype: type = np.float32, seed: int = 0) -> np.ndarray:
    """An ellipsoid 'brain' (values about 100) with a bright blob (about 300) and a little noise."""
    grid = np.indices(SHAPE).astype(np.float32)
    centre = (np.array(SHAPE, np.float32) - 1) / 2
    r = np.sqrt(sum(((grid[i] - centre[i]) / (SHAPE[i] * 0.42)) ** 2 for i in range(3)))
    data = np.where(r < 1, 100.0, 0.0).astype(np.float32)
    blob = np.sqrt((grid[0] - 8) ** 2 + (grid[1] - 12) ** 2 + (grid[2] - 10) ** 2) < 3.5
    data[blob] = 300.0
    data += np.random.default_rng(seed).normal(0, 2, SHAPE).astype(np.float32) * (r < 1)
    return data.astype(dtype)


def save_nifti(data: np.ndarray, path: Path, affine: np.ndarray | None = None) -> Path:
    """Write NIfTI; an affine nibabel cannot write as a qform goes in the sform only."""
    affine = base_affine() if affine is None else affine
    if abs(np.linalg.det(affine[:3, :3])) > 1e-6:
        nib.save(nib.Nifti1Image(data, affine), str(path))
        return path
    img = nib.Nifti1Image(data, base_affine())
    img.set_qform(None, code=0)
    img.set_sform(affine, code=2)
    nib.save(img, str(path))
    return path


def _dicom_series(folder: Path, data: np.ndarray, *, series_uid: str | None = None,
                  skip: int | None = None, duplicate: int | None = None, first_number: int = 1,
                  description: str = "T1 axial") -> Path:
    """Write `data` (x, y, z) as an MR DICOM series of axial slices with pydicom."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    study, series = "1.2.826.0.1.3680043.8.498.1", series_uid or generate_uid()
    frame = "1.2.826.0.1.3680043.8.498.2"
    pixels = np.clip(data, 0, 4000).astype(np.uint16)
    for k in range(data.shape[2]):
        if k == skip:
            continue
        for copy in range(2 if k == duplicate else 1):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID = MRImageStorage, ExplicitVRLittleEndian
            meta.MediaStorageSOPInstanceUID = uid = generate_uid()
            ds = pydicom.Dataset()
            ds.file_meta = meta
            ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, uid
            ds.Modality, ds.SeriesDescription = "MR", description
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
            ds.PatientName, ds.PatientID = "", ""
            ds.InstanceNumber = first_number + k
            ds.ImagePositionPatient = [0.0, 0.0, float(k * SPACING[2])]
            ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
            ds.PixelSpacing = [SPACING[1], SPACING[0]]
            ds.SliceThickness = SPACING[2]
            ds.Rows, ds.Columns = data.shape[1], data.shape[0]
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            ds.PixelData = np.ascontiguousarray(pixels[:, :, k].T).tobytes()
            ds.save_as(folder / f"{series[-6:]}_{k:03d}_{copy}.dcm", enforce_file_format=True)
    return folder


def build_corpus(folder: Path) -> list[Case]:
    """Write every case into `folder` (a fresh directory) and return them, valid base first."""
    folder.mkdir(parents=True, exist_ok=True)
    data = head()
    good = save_nifti(data, folder / "good_t1.nii.gz")
    cases: list[Case] = [Case("valid scan (control)", good, "accept", "nothing wrong")]

    def add(name: str, file: str, expect: str, problem: str, **kw: str | bool) -> Path:
        cases.append(Case(name, folder / file, expect, problem, **kw))
        return folder / file

    raw = good.read_bytes()
    add("truncated gzip", "truncated.nii.gz", "refuse", "truncated").write_bytes(raw[: len(raw) // 2])
    add("corrupt gzip", "corrupt.nii.gz", "refuse", "corrupt").write_bytes(
        raw[:20] + bytes(range(256)) * 8)
    add("zero-byte file", "empty.nii.gz", "refuse", "empty").write_bytes(b"")
    add("text named .nii", "notes.nii", "refuse", "not a").write_text("patient notes, not an image\n")
    png = add("PNG named .png", "photo.png", "refuse", "not a")
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    add("NIfTI named .png", "scan_nifti.png", "refuse", "extension").write_bytes(
        gzip.decompress(raw))
    gz_plain = add("gzip of text named .nii.gz", "text.nii.gz", "refuse", "not a")
    gz_plain.write_bytes(gzip.compress(b"hello " * 100))
    save_nifti(data[:, :, 10], add("2D image", "slice2d.nii.gz", "refuse", "2D"), np.eye(4))
    save_nifti(np.stack([data] * 3, axis=-1), add("4D series", "series4d.nii.gz", "refuse", "4D"))
    nan = data.copy()
    nan[5:8, 5:8, 5:8] = np.nan
    nan[0, 0, 0] = np.inf
    save_nifti(nan, add("NaN / Inf voxels", "nan_inf.nii.gz", "warn", "NaN"))
    lenient = {"io": "warn", "generic": "warn"}  # a plain read, or a model that knows no anatomy
    save_nifti(np.zeros(SHAPE, np.float32),
               add("all-zero volume", "zeros.nii.gz", "refuse", "empty", **lenient))
    save_nifti(np.full(SHAPE, 7, np.int16),
               add("constant volume", "constant.nii.gz", "refuse", "same value", **lenient))
    save_nifti((data / 4).astype(np.int8), add("int8 data", "int8.nii.gz", "accept", ""))
    save_nifti(data.astype(np.uint16), add("uint16 data", "uint16.nii.gz", "accept", ""))
    save_nifti(data.astype(np.float64), add("float64 data", "float64.nii.gz", "accept", ""))
    complex_img = nib.Nifti1Image(data.astype(np.complex64), base_affine())
    nib.save(complex_img, str(add("complex data", "complex.nii.gz", "refuse", "complex")))
    zero_spacing = base_affine()
    zero_spacing[2, 2] = 0.0
    save_nifti(data, add("spacing 0 mm", "spacing0.nii.gz", "refuse", "spacing"), zero_spacing)
    huge = base_affine((1e6, 1e6, 1e6))
    save_nifti(data, add("spacing 1e6 mm", "spacing1e6.nii.gz", "refuse", "spacing"), huge)
    flipped = base_affine()
    flipped[0, 0], flipped[0, 3] = SPACING[0], -SPACING[0] * (SHAPE[0] - 1) + flipped[0, 3]
    # "negative spacing" is a flipped axis: a valid scan (same box in space, mirrored storage)
    save_nifti(data[::-1], add("negative spacing (flip)", "negative.nii.gz", "accept", ""), flipped)
    singular = base_affine()
    singular[:3, 1] = singular[:3, 0]  # two voxel axes along the same direction
    save_nifti(data, add("singular affine", "singular.nii.gz", "refuse", "affine"), singular)
    angle = np.deg2rad(25)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    oblique = base_affine()
    oblique[:3, :3] = rot @ oblique[:3, :3]
    save_nifti(data, add("oblique affine", "oblique.nii.gz", "accept", ""), oblique)
    conflict = nib.Nifti1Image(data, base_affine())
    shifted = base_affine()
    shifted[:3, 3] += 40.0
    conflict.set_qform(shifted, code=1)
    conflict.set_sform(base_affine(), code=2)
    nib.save(conflict, str(add("qform/sform conflict", "qform_sform.nii.gz", "warn", "qform")))
    chest = np.full((48, 36, 36), -1000.0, np.float32)  # a chest CT: 480 x 360 x 360 mm, HU
    body = np.indices(chest.shape)
    chest[((body[0] - 24) / 22) ** 2 + ((body[1] - 18) / 15) ** 2 < 1] = 40.0  # a 440 mm wide trunk
    for side in (14, 34):
        chest[((body[0] - side) / 7) ** 2 + ((body[1] - 18) / 10) ** 2 < 1] = -800.0  # lungs
    chest_affine = np.diag([-10.0, -10.0, 10.0, 1.0])
    save_nifti(chest, add("chest CT (not a brain)", "chest_ct.nii.gz", "refuse", "brain", io="accept",
                          generic="accept", pair="self"), chest_affine)
    other = base_affine()
    other[:3, 3] += 500.0  # 500 mm away: no overlap with the base scan
    save_nifti(head(seed=1), add("grids disagree (no overlap)", "far_grid.nii.gz", "refuse", "space",
                                 pair="second", paired_only=True), other)
    _dicom_series(add("DICOM missing slice", "dicom_missing", "refuse", "missing"), data, skip=9)
    mixed = add("DICOM mixed series", "dicom_mixed", "refuse", "series")
    _dicom_series(mixed, data)
    _dicom_series(mixed, data[:, :, :12], description="FLAIR axial")
    _dicom_series(add("DICOM duplicated slice", "dicom_duplicate", "refuse", "same position"), data,
                  duplicate=7)
    _dicom_series(add("DICOM single slice", "dicom_single", "refuse", "single slice"), data[:, :, :1])
    cases.append(Case("missing file", folder / "does_not_exist.nii.gz", "refuse", "does not exist"))
    return cases
