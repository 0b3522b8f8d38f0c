"""Geometry round trips on real files and clear refusals of bad input."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_brain_dl.core import io
from napari_brain_dl.core.volume import Volume, reorient, restore_orientation

REAL_FILES = {
    "RAS": "niivue_chris/chris_t1.nii.gz",
    "RAS anisotropic": "niivue_chris/chris_PD.nii.gz",
    "LPS": "brats_gli_00001/t1c.nii.gz",
    "LAS": "niivue_templates/MNI152_T1_2mm.nii.gz",
    "LIA": "brainchop_models/t1_crop.nii.gz",
    "qform only": "hippodeep/example_brain_t1.nii.gz",
    "sform only float64": "brats_gli_00001/seg-BraTS23_1_mapped.nii.gz",
    "qform 0 / sform 2 float32": "brats2015_flair_t1c/brats_2013_pat0003_1/Flair_subtrMeanDivStd.nii.gz",
}


@pytest.mark.parametrize("case", list(REAL_FILES))
def test_nifti_round_trip_keeps_data_and_affine(case: str, data_dir: Path, tmp_path: Path) -> None:
    source = data_dir / REAL_FILES[case]
    reference = nib.load(str(source))
    volume = io.load(source)
    assert np.array_equal(volume.data, np.asanyarray(reference.dataobj))
    np.testing.assert_allclose(volume.affine, reference.affine, atol=1e-6)

    out = io.save(volume, tmp_path / "round.nii.gz")
    again = nib.load(str(out))
    assert np.array_equal(np.asanyarray(again.dataobj), np.asanyarray(reference.dataobj))
    assert again.get_data_dtype() == reference.get_data_dtype()
    np.testing.assert_allclose(again.affine, reference.affine, atol=1e-5)
    # qform and sform written identical, so readers that prefer either agree.
    np.testing.assert_allclose(again.get_qform(), again.get_sform(), atol=1e-4)


def test_expected_orientations(data_dir: Path) -> None:
    codes = {case: io.load(data_dir / rel).axcodes for case, rel in REAL_FILES.items()}
    assert codes["LPS"] == "LPS" and codes["LAS"] == "LAS" and codes["LIA"] == "LIA"
    assert codes["RAS"] == "RAS"
    pd = io.load(data_dir / REAL_FILES["RAS anisotropic"])
    np.testing.assert_allclose(pd.spacing[2], 2.4, atol=1e-3)
    qonly = io.load(data_dir / REAL_FILES["qform only"])
    assert qonly.meta["affine_source"] == "qform"


def test_dicom_series_matches_simpleitk(data_dir: Path, tmp_path: Path) -> None:
    import SimpleITK as sitk

    folder = data_dir / "dicom_t1_axial"
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    expected = sitk.GetArrayFromImage(image)  # (z, y, x)

    volume = io.load(folder)
    assert volume.shape == (512, 512, 120) and volume.axcodes == "LPS"
    assert np.array_equal(volume.data.transpose(2, 1, 0), expected)
    # ITK's physical point of a voxel, converted LPS -> RAS, equals our affine applied to it.
    for index in [(0, 0, 0), (511, 0, 0), (10, 300, 119)]:
        lps = np.array(image.TransformIndexToPhysicalPoint(index))
        ras = volume.affine @ np.array([*index, 1.0])
        np.testing.assert_allclose(ras[:3], lps * [-1, -1, 1], atol=1e-5)
    assert "patient_name" not in volume.meta and volume.meta["modality"] == "MR"

    out = io.save(volume, tmp_path / "dicom.nii.gz")
    again = nib.load(str(out))
    assert np.array_equal(np.asanyarray(again.dataobj), volume.data)
    np.testing.assert_allclose(again.affine, volume.affine, atol=1e-5)


def test_qform_sform_conflict_uses_sform_and_warns(tmp_path: Path) -> None:
    img = nib.Nifti1Image(np.arange(27, dtype=np.int16).reshape(3, 3, 3), np.eye(4))
    img.set_qform(np.diag([-1.0, 1, 1, 1]), code=1)
    img.set_sform(np.diag([2.0, 2, 2, 1]), code=2)
    path = tmp_path / "conflict.nii.gz"
    nib.save(img, str(path))
    volume = io.load(path)
    np.testing.assert_allclose(volume.affine, np.diag([2.0, 2, 2, 1]))
    assert volume.meta["affine_source"] == "sform"
    assert any("qform and sform disagree" in w for w in volume.warnings)


def test_reorient_round_trip_is_exact(data_dir: Path) -> None:
    volume = io.load(data_dir / REAL_FILES["LIA"])
    shown, transform = reorient(volume, ("S", "P", "L"))
    assert shown.axcodes == "SPL"
    assert np.array_equal(restore_orientation(shown.data, transform), volume.data)
    # The same voxel has the same world position in both frames.
    ijk = np.array([10, 20, 30])
    world = volume.affine @ np.r_[ijk, 1]
    shown_ijk = np.linalg.solve(shown.affine, world)[:3]
    assert shown.data[tuple(np.round(shown_ijk).astype(int))] == volume.data[tuple(ijk)]


def _write(tmp_path: Path, name: str, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path = tmp_path / name
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def test_bad_inputs_give_one_clear_sentence(tmp_path: Path, data_dir: Path) -> None:
    good = (data_dir / REAL_FILES["LAS"]).read_bytes()
    (tmp_path / "truncated.nii.gz").write_bytes(good[: len(good) // 3])
    (tmp_path / "empty.nii.gz").write_bytes(b"")
    (tmp_path / "notes.nii").write_text("this is not an image")
    (tmp_path / "corrupt.nii.gz").write_bytes(gzip.compress(b"x" * 400))
    _write(tmp_path, "flat.nii.gz", np.zeros((64, 64, 1), np.float32))
    _write(tmp_path, "four_d.nii.gz", np.zeros((4, 4, 4, 3), np.float32))
    _write(tmp_path, "complex.nii", np.zeros((4, 4, 4), np.complex64))
    expected = {
        "truncated.nii.gz": "truncated or corrupt",
        "empty.nii.gz": "empty file",
        "notes.nii": "not a NIfTI",
        "corrupt.nii.gz": "",
        "flat.nii.gz": "2D image",
        "four_d.nii.gz": "4D series of 3 volumes",
        "complex.nii": "complex",
        "missing.nii.gz": "does not exist",
    }
    for name, words in expected.items():
        with pytest.raises((io.ImageReadError, FileNotFoundError)) as info:
            io.load(tmp_path / name)
        message = str(info.value)
        assert words in message and name in message, message
        assert message.count("\n") == 0


def test_four_d_volume_choice(tmp_path: Path) -> None:
    data = np.random.default_rng(0).random((4, 5, 6, 3)).astype(np.float32)
    path = _write(tmp_path, "dwi.nii.gz", data, np.diag([2.0, 2, 2, 1]))
    with pytest.raises(io.SeriesChoiceError) as info:
        io.load(path)
    assert info.value.choices == ["0", "1", "2"]
    assert np.array_equal(io.load(path, volume_index=2).data, data[..., 2])


def test_nan_and_all_zero_are_flagged(tmp_path: Path) -> None:
    data = np.ones((4, 4, 4), np.float32)
    data[0, 0, 0] = np.nan
    data[1, 1, 1] = np.inf
    assert "2 voxels are NaN" in io.load(_write(tmp_path, "nan.nii.gz", data)).warnings[0]
    zeros = io.load(_write(tmp_path, "zeros.nii.gz", np.zeros((4, 4, 4), np.int16)))
    assert any("zero" in w for w in zeros.warnings)


def test_volume_larger_than_memory_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "big.nii.gz", np.zeros((32, 32, 32), np.float32))
    monkeypatch.setattr(io, "available_memory_bytes", lambda: 1000)
    with pytest.raises(io.ImageReadError, match="GiB of memory is free"):
        io.load(path)


def test_save_is_atomic_and_never_overwrites(tmp_path: Path) -> None:
    volume = Volume(np.ones((3, 4, 5), np.uint8), np.diag([1.0, 2, 3, 1]))
    target = io.save(volume, tmp_path / "mask.nii.gz")
    before = target.read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        io.save(volume.with_data(np.zeros((3, 4, 5), np.uint8)), target)
    assert target.read_bytes() == before

    class Boom(RuntimeError):
        pass

    with pytest.raises(Boom), io.atomic_output(tmp_path / "half.nii.gz") as tmp:
        tmp.write_bytes(b"partial")
        raise Boom
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.nii.gz"]


def test_nrrd_round_trip(tmp_path: Path) -> None:
    affine = np.array([[0, 0, -1.5, 10], [0.9, 0, 0, -20], [0, 1.2, 0, 5], [0, 0, 0, 1]], float)
    volume = Volume(np.arange(60, dtype=np.int16).reshape(3, 4, 5), affine)
    io.save(volume, tmp_path / "scan.nrrd")
    again = io.load(tmp_path / "scan.nrrd")
    assert np.array_equal(again.data, volume.data)
    np.testing.assert_allclose(again.affine, affine, atol=1e-5)


def test_saved_files_follow_the_umask_not_mkstemp(tmp_path: Path) -> None:
    import stat

    old = os.umask(0o027)
    try:
        out = io.save(Volume(np.zeros((3, 3, 3), np.float32), np.eye(4)), tmp_path / "shared.nii.gz")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o640  # group-readable, as any file the user makes
