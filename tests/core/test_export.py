"""Label export: NIfTI on the native grid and DICOM SEG against the real DICOM series."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from napari_brain_dl.core import io
from napari_brain_dl.core.dicom import LPS_TO_RAS, is_dicom_file
from napari_brain_dl.core.export import save_dicom_seg, save_labels_nifti
from napari_brain_dl.core.volume import Volume, reorient


def reference(axcodes: str) -> Volume:
    """A 30 x 28 x 12 scan, 0.9 x 0.9 x 2.0 mm, slightly oblique, in LPS or RAS."""
    flip = -1.0 if axcodes == "LPS" else 1.0
    angle = np.radians(7.0)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([0.9 * flip, 0.9 * flip, 2.0])
    affine[:3, 3] = (12.3, -40.7, 5.5)
    vol = Volume(np.random.default_rng(0).random((30, 28, 12)).astype(np.float32), affine, name="t1")
    assert vol.axcodes == axcodes
    return vol


def blob_labels(ref: Volume) -> Volume:
    data = np.zeros(ref.shape, np.int16)
    data[3:9, 10:14, 2:5] = 3
    data[20, 5, 7] = 1
    return ref.with_data(data, name="seg")


@pytest.mark.parametrize("axcodes", ["LPS", "RAS"])
def test_nifti_round_trip_on_reference_grid(tmp_path: Path, axcodes: str) -> None:
    ref = reference(axcodes)
    labels = blob_labels(ref)
    out = save_labels_nifti(labels, ref, tmp_path / "seg.nii.gz", description="BraTS labels, edited")
    img = nib.load(str(out))
    assert img.shape == ref.shape and img.get_data_dtype() == np.uint8
    assert np.allclose(img.affine, ref.affine, atol=1e-5)
    assert np.allclose(img.header.get_qform(), ref.affine, atol=1e-5)
    assert np.allclose(img.header.get_sform(), ref.affine, atol=1e-5)
    assert img.header["descrip"].tobytes().startswith(b"BraTS labels, edited")
    assert np.array_equal(np.asarray(img.dataobj), labels.data)
    # Labels handed over in another orientation land on the same voxels, without interpolation.
    other, _ = reorient(labels, ("L", "I", "A"))
    img2 = nib.load(str(save_labels_nifti(other, ref, tmp_path / "seg2.nii")))
    assert np.allclose(img2.affine, ref.affine, atol=1e-5)
    assert np.array_equal(np.asarray(img2.dataobj), labels.data)
    back = io.load(out)
    assert back.same_grid(ref, atol=1e-5) and back.meta["header_text"]["descrip"] == "BraTS labels, edited"


def test_nifti_resamples_labels_from_another_grid(tmp_path: Path) -> None:
    ref = Volume(np.zeros((40, 40, 20), np.float32), np.eye(4))
    coarse_affine = np.diag([2.0, 2.0, 2.0, 1.0])
    coarse_affine[:3, 3] = 0.5  # coarse voxel i covers fine voxels 2i and 2i + 1
    coarse = np.zeros((20, 20, 10), np.uint8)
    coarse[5:8, 2:4, 3:5] = 2
    out = save_labels_nifti(Volume(coarse, coarse_affine), ref, tmp_path / "seg.nii.gz")
    data = np.asarray(nib.load(str(out)).dataobj)
    expected = np.zeros(ref.shape, np.uint8)
    expected[10:16, 4:8, 6:10] = 2
    assert data.shape == ref.shape and np.array_equal(data, expected)


def test_nifti_refuses_overwrite_and_bad_paths(tmp_path: Path) -> None:
    ref = reference("LPS")
    labels = blob_labels(ref)
    target = tmp_path / "seg.nii.gz"
    save_labels_nifti(labels, ref, target)
    before = target.read_bytes()
    with pytest.raises(FileExistsError, match="already exists"):
        save_labels_nifti(labels.with_data(np.zeros(ref.shape, np.uint8)), ref, target)
    assert target.read_bytes() == before
    save_labels_nifti(labels.with_data(np.zeros(ref.shape, np.uint8)), ref, target, overwrite=True)
    assert not np.asarray(nib.load(str(target)).dataobj).any()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_labels_nifti(labels, ref, tmp_path / "missing" / "seg.nii.gz")
    with pytest.raises(ValueError, match=r"\.nii"):
        save_labels_nifti(labels, ref, tmp_path / "seg.nrrd")
    with pytest.raises(ValueError, match="uint8"):
        save_labels_nifti(labels.with_data(np.full(ref.shape, 300, np.int16)), ref, tmp_path / "big.nii")
    with pytest.raises(ValueError, match="uint8"):
        save_labels_nifti(labels.with_data(np.full(ref.shape, -1, np.int16)), ref, tmp_path / "neg.nii")
    with pytest.raises(ValueError, match="fractional"):
        save_labels_nifti(labels.with_data(np.full(ref.shape, 0.5, np.float32)), ref, tmp_path / "f.nii")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg.nii.gz"]  # no temporary files left


@pytest.fixture(scope="module")
def dicom_series(data_dir: Path) -> tuple[Volume, list[pydicom.Dataset]]:
    source = io.load(data_dir / "dicom_t1_axial")
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in source.meta["dicom_files"]]
    return source, headers


def dicom_position(ds: pydicom.Dataset, column: int, row: int) -> np.ndarray:
    """LPS position of a pixel from the file's own header (DICOM PS3.3 C.7.6.2.1.1)."""
    iop = np.asarray(ds.ImageOrientationPatient, float)
    spacing = [float(v) for v in ds.PixelSpacing]
    return (np.asarray(ds.ImagePositionPatient, float) + iop[:3] * spacing[1] * column
            + iop[3:] * spacing[0] * row)


def test_dicom_seg_frames_match_source_slices(tmp_path: Path, dicom_series) -> None:
    import highdicom as hd

    source, headers = dicom_series
    assert source.shape == (512, 512, 120)
    data = np.zeros(source.shape, np.uint8)
    data[200:210, 300:305, 50:53] = 3  # i = column, j = row, k = slice of the Volume
    data[100:102, 100:103, 70] = 1
    labels = source.with_data(data, name="seg")
    out = save_dicom_seg(labels, source, tmp_path / "seg.dcm",
                         label_names={1: "necrotic core", 2: "edema", 3: "enhancing tumour"})
    assert is_dicom_file(out)
    seg = hd.seg.segread(out)
    assert seg.SeriesInstanceUID != source.meta["series_uid"]
    assert seg.StudyInstanceUID == source.meta["study_uid"]
    assert b"dicom_t1_axial" not in out.read_bytes()  # no local paths or other added text
    segments = {s.SegmentNumber: s for s in seg.SegmentSequence}
    assert [segments[n].SegmentLabel for n in (1, 2)] == ["necrotic core", "enhancing tumour"]
    assert {s.SegmentAlgorithmType for s in segments.values()} == {"AUTOMATIC"}
    assert segments[1].SegmentedPropertyTypeCodeSequence[0].CodeValue == "6574001"  # necrosis
    assert segments[2].SegmentedPropertyTypeCodeSequence[0].CodeValue == "108369006"  # neoplasm
    assert segments[2].SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"
    assert seg.SegmentationType == "BINARY"

    by_uid = {ds.SOPInstanceUID: (k, ds) for k, ds in enumerate(headers)}
    expected = {(k, 2): 50 for k in (50, 51, 52)} | {(70, 1): 6}
    found = {}
    pixels = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    for index, frame in enumerate(seg.PerFrameFunctionalGroupsSequence):
        uid = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        k, ds = by_uid[uid]
        assert np.allclose(frame.PlanePositionSequence[0].ImagePositionPatient, ds.ImagePositionPatient)
        number = int(frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        found[(k, number)] = int(pixels[index].sum())
        rows, cols = np.nonzero(pixels[index])
        value = 3 if number == 2 else 1
        assert np.all(data[cols, rows, k] == value)
        # The same pixels in world space: from the DICOM header and from the Volume's RAS affine.
        world = (LPS_TO_RAS @ source.affine @ [cols[0], rows[0], k, 1.0])[:3]
        assert np.allclose(world, dicom_position(ds, cols[0], rows[0]), atol=1e-3)
    assert found == expected


def test_dicom_seg_accepts_reoriented_labels_and_semiautomatic(tmp_path: Path, dicom_series) -> None:
    import highdicom as hd

    source, headers = dicom_series
    data = np.zeros(source.shape, np.uint8)
    data[10:20, 30:32, 5] = 1
    ras, _ = reorient(source.with_data(data), ("R", "A", "S"))
    out = save_dicom_seg(ras, source, tmp_path / "seg.dcm", label_names={1: "brain"},
                         algorithm_type="SEMIAUTOMATIC")
    seg = hd.seg.segread(out)
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "SEMIAUTOMATIC"
    assert seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "Brain"
    (frame,) = seg.PerFrameFunctionalGroupsSequence
    uid = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
    assert uid == headers[5].SOPInstanceUID
    rows, cols = np.nonzero(seg.pixel_array.reshape(seg.Rows, seg.Columns))
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (30, 31, 10, 19)


def test_dicom_seg_errors(tmp_path: Path, dicom_series) -> None:
    source, _ = dicom_series
    data = np.zeros(source.shape, np.uint8)
    data[1, 1, 1] = 1
    labels = source.with_data(data)
    names = {1: "tumour"}
    nifti_like = Volume(source.data, source.affine, name="t1")
    with pytest.raises(ValueError, match="not loaded from a DICOM series"):
        save_dicom_seg(labels, nifti_like, tmp_path / "a.dcm", label_names=names)
    with pytest.raises(ValueError, match="no labelled voxels"):
        save_dicom_seg(source.with_data(np.zeros_like(data)), source, tmp_path / "a.dcm", label_names=names)
    other = Volume(np.ones((64, 64, 30), np.uint8), np.diag([-3.0, -3.0, 6.0, 1.0]))
    with pytest.raises(ValueError, match="not on the grid"):
        save_dicom_seg(other, source, tmp_path / "a.dcm", label_names=names)
    with pytest.raises(ValueError, match="no name"):
        save_dicom_seg(labels, source, tmp_path / "a.dcm", label_names={2: "edema"})
    with pytest.raises(ValueError, match="algorithm_type"):
        save_dicom_seg(labels, source, tmp_path / "a.dcm", label_names=names, algorithm_type="AI")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_dicom_seg(labels, source, tmp_path / "missing" / "a.dcm", label_names=names)
    target = tmp_path / "a.dcm"
    target.write_bytes(b"keep")
    with pytest.raises(FileExistsError, match="already exists"):
        save_dicom_seg(labels, source, target, label_names=names)
    assert target.read_bytes() == b"keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.dcm"]
