"""Hostile or malformed volumes beyond the corpus: odd DICOM geometry, colour voxels, odd dtypes.

Each file is generated here (the DICOM series with the corpus's pydicom writer, then edited).
A refusal is exit code 3 with one error line, no traceback and no file written.
"""

from __future__ import annotations

import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from bad_inputs.commands import Outcome, run_cli
from bad_inputs.corpus import SPACING, _dicom_series, base_affine, head, save_nifti
from napari_brain_dl.core import io


def _refused(result: Outcome, *words: str) -> list[str]:
    """What is wrong with a refusal (empty when it is one clean sentence holding `words`)."""
    problems = []
    if result.code != 3 or "Traceback" in result.err or len(result.error_lines) != 1:
        problems.append(f"exit {result.code}, not one clean error line: {result.err.strip()[-300:]}")
    problems += [f"no {w!r} in {result.err.strip()!r}" for w in words if w.lower() not in result.err.lower()]
    if result.files:
        problems.append(f"wrote {[p.name for p in result.files]}")
    return problems


def _edit_series(folder: Path, edit: object) -> Path:
    """Apply `edit(dataset, slice_index)` to every file of a series (files sorted by name)."""
    for k, path in enumerate(sorted(folder.iterdir())):
        ds = pydicom.dcmread(path)
        edit(ds, k)  # type: ignore[operator]
        ds.save_as(path)
    return folder


def _uneven(folder: Path) -> Path:
    """Slice gaps alternating 3 and 4.4 mm (the mean, 3.7 mm, hides no missing slice)."""
    offsets = np.concatenate([[0.0], np.cumsum([3.0 if k % 2 else 4.4 for k in range(19)])])
    return _edit_series(_dicom_series(folder, head()),
                        lambda ds, k: setattr(ds, "ImagePositionPatient", [0.0, 0.0, float(offsets[k])]))


def _mixed_orientation(folder: Path) -> Path:
    """Slices 10 and up turned by 15 degrees in plane (same positions along z)."""
    c, s = np.cos(np.deg2rad(15)), np.sin(np.deg2rad(15))

    def turn(ds: pydicom.Dataset, k: int) -> None:
        if k >= 10:
            ds.ImageOrientationPatient = [float(c), float(s), 0.0, float(-s), float(c), 0.0]

    return _edit_series(_dicom_series(folder, head()), turn)


@pytest.mark.parametrize(("make", "words"),
                         [(_uneven, ("unevenly",)), (_mixed_orientation, ("orientation",))])
def test_dicom_series_off_a_regular_grid_are_refused(tmp_path: Path, make: object, words: tuple[str]) -> None:
    folder = make(tmp_path / "series")  # type: ignore[operator]
    out = tmp_path / "out"
    problems = _refused(run_cli(["info", str(folder)], out), *words)
    problems += _refused(run_cli(["convert", str(folder), str(out / "x.nii.gz")], out), *words)
    assert not problems


def test_dicom_gaps_within_the_tolerance_are_accepted(tmp_path: Path) -> None:
    jitter = np.random.default_rng(0).uniform(-0.005, 0.005, 20)  # scanner rounding, under 0.01 mm
    folder = _edit_series(_dicom_series(tmp_path / "series", head()), lambda ds, k: setattr(
        ds, "ImagePositionPatient", [0.0, 0.0, float(k * SPACING[2] + jitter[k])]))
    volume = io.load(folder)
    assert volume.shape == (24, 24, 20) and abs(volume.spacing[2] - SPACING[2]) < 0.01


def test_a_flat_mha_is_refused_like_a_flat_nifti(tmp_path: Path) -> None:
    import SimpleITK as sitk

    sitk.WriteImage(sitk.GetImageFromArray(np.ones((1, 64, 64), np.float32)), str(tmp_path / "flat.mha"))
    nib.save(nib.Nifti1Image(np.ones((64, 64, 1), np.float32), np.eye(4)), str(tmp_path / "flat.nii.gz"))
    for name in ("flat.mha", "flat.nii.gz"):
        assert not _refused(run_cli(["info", str(tmp_path / name)], tmp_path / "out"), "2D")



def _rgb_nifti(path: Path) -> Path:
    rgb = np.zeros(head().shape, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb["R"] = np.clip(head(), 0, 255)
    nib.save(nib.Nifti1Image(rgb, base_affine()), str(path))
    return path


def _vector_nifti(path: Path) -> Path:
    img = nib.Nifti1Image(np.stack([head()] * 3, -1)[:, :, :, None, :], base_affine())
    img.header.set_intent("vector")
    nib.save(img, str(path))
    return path


@pytest.mark.parametrize(("make", "word"), [(_rgb_nifti, "colour"), (_vector_nifti, "per voxel")])
def test_colour_and_vector_nifti_are_refused_by_every_reader(tmp_path: Path, make: object, word: str) -> None:
    scan = str(make(tmp_path / "scan.nii.gz"))  # type: ignore[operator]
    good = str(save_nifti(head(), tmp_path / "good.nii.gz"))
    out = tmp_path / "out"
    runs = [["info", scan], ["convert", scan, str(out / "x.nii.gz")],
            ["click-segment", "--flair", scan, "--t1c", good, "--fg", "8,12,10", "--device", "cpu",
             "-o", str(out / "mask.nii.gz")],
            ["synthesize", "--t1", scan, "--t2", good, "--target", "flair", "--model", "histogram",
             "--device", "cpu", "-o", str(out / "flair_synthetic.nii.gz")]]
    problems = [f"{argv[0]}: {p}" for argv in runs for p in _refused(run_cli(argv, out), word, "scan.nii.gz")]
    assert not problems


def test_a_colour_dicom_series_is_refused(tmp_path: Path) -> None:
    def to_rgb(ds: pydicom.Dataset, k: int) -> None:
        pixels = np.repeat(np.clip(ds.pixel_array, 0, 255)[..., None], 3, -1).astype(np.uint8)
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.PixelData = pixels.tobytes()

    folder = _edit_series(_dicom_series(tmp_path / "series", head()), to_rgb)
    assert not _refused(run_cli(["info", str(folder)], tmp_path / "out"), "colour")


def _raw_nifti(path: Path, pixdim: tuple[float, float, float], qform_code: int) -> Path:
    """A NIfTI written byte by byte (nibabel would repair the pixdim on writing)."""
    img = nib.Nifti1Image(head(), None)
    img.set_qform(None, code=0)
    img.set_sform(None, code=0)
    header = bytearray(img.header.binaryblock)
    struct.pack_into("<3f", header, 80, *pixdim)  # pixdim[1:4]
    struct.pack_into("<h", header, 252, qform_code)
    path.write_bytes(bytes(header) + b"\0" * 4 + head().tobytes(order="F"))
    return path


@pytest.mark.parametrize("qform_code", [0, 1])
def test_a_zero_voxel_size_is_refused_not_read_as_1_mm(tmp_path: Path, qform_code: int) -> None:
    scan = _raw_nifti(tmp_path / "pixdim0.nii", (0.0, 0.0, 0.0), qform_code)
    out = tmp_path / "out"
    problems = _refused(run_cli(["info", str(scan)], out), "voxel size", "pixdim0.nii")
    problems += _refused(run_cli(["convert", str(scan), str(out / "x.nii.gz")], out), "voxel size")
    assert not problems
    assert io.load(_raw_nifti(tmp_path / "fine.nii", (2.0, 2.0, 3.0), qform_code)).spacing == (2.0, 2.0, 3.0)


def test_64_bit_integers_are_written_or_refused_naming_the_file(tmp_path: Path) -> None:
    small = nib.Nifti1Image(head().astype(np.uint64), base_affine(), dtype=np.uint64)
    nib.save(small, str(tmp_path / "u64.nii.gz"))
    out = tmp_path / "out"
    result = run_cli(["convert", str(tmp_path / "u64.nii.gz"), str(out / "x.nii.gz")], out)
    assert result.code == 0, result.err
    assert np.array_equal(np.asarray(nib.load(out / "x.nii.gz").dataobj), head().astype(np.int32))
    big = head().astype(np.uint64) * np.uint64(2**40)
    nib.save(nib.Nifti1Image(big, base_affine(), dtype=np.uint64), str(tmp_path / "huge.nii.gz"))
    other = tmp_path / "out2"
    assert not _refused(run_cli(["convert", str(tmp_path / "huge.nii.gz"), str(other / "y.nii.gz")], other),
                        "64-bit", "huge.nii.gz")
    volume = io.load(tmp_path / "u64.nii.gz")
    with pytest.raises(ValueError, match=r"y\.nii\.gz"):
        io.save(volume.with_data(big), out / "y.nii.gz")


def test_a_zero_voxel_size_in_a_nifti_pair_is_refused(tmp_path: Path) -> None:
    img = nib.Nifti1Pair(head(), None)
    img.set_qform(None, code=0)
    img.set_sform(None, code=0)
    nib.save(img, str(tmp_path / "pair.img"))
    header = bytearray((tmp_path / "pair.hdr").read_bytes())
    struct.pack_into("<3f", header, 80, 0.0, 0.0, 0.0)
    (tmp_path / "pair.hdr").write_bytes(bytes(header))
    with pytest.raises(io.ImageReadError, match="voxel size of 0 x 0 x 0 mm"):
        io.load(tmp_path / "pair.hdr")
