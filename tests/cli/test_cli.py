"""The foundation commands: info, convert, and clear failures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from napari_brain_dl.cli import main


def test_info_prints_geometry(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(data_dir / "brats_gli_00001" / "t1c.nii.gz")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shape"] == [240, 240, 155] and info["axcodes"] == "LPS"
    assert info["spacing"] == [1.0, 1.0, 1.0] and info["dtype"] == "int16"
    expected = nib.load(str(data_dir / "brats_gli_00001" / "t1c.nii.gz")).affine
    np.testing.assert_allclose(info["affine"], expected)


def test_convert_nifti_and_refuse_overwrite(data_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    source = data_dir / "brainchop_models" / "t1_crop.nii.gz"
    out = tmp_path / "t1.nii.gz"
    assert main(["convert", str(source), str(out)]) == 0
    a, b = nib.load(str(source)), nib.load(str(out))
    assert np.array_equal(np.asanyarray(a.dataobj), np.asanyarray(b.dataobj))
    np.testing.assert_allclose(a.affine, b.affine, atol=1e-5)
    stamp = out.stat().st_mtime_ns
    assert main(["convert", str(source), str(out)]) == 3
    assert "--overwrite" in capsys.readouterr().err
    assert out.stat().st_mtime_ns == stamp
    assert main(["convert", str(source), str(out), "--overwrite"]) == 0


def test_convert_dicom_equals_simpleitk(data_dir: Path, tmp_path: Path) -> None:
    folder = data_dir / "dicom_t1_axial"
    out = tmp_path / "dicom.nii.gz"
    assert main(["convert", str(folder), str(out)]) == 0
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    written = nib.load(str(out))
    assert np.array_equal(np.asanyarray(written.dataobj).transpose(2, 1, 0), sitk.GetArrayFromImage(image))
    origin_ras = np.array(image.GetOrigin()) * [-1, -1, 1]
    np.testing.assert_allclose(written.affine[:3, 3], origin_ras, atol=1e-5)


def test_bad_input_exits_2_with_one_sentence(tmp_path: Path) -> None:
    bad = tmp_path / "scan.nii.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage")
    result = subprocess.run([sys.executable, "-m", "napari_brain_dl.cli", "info", str(bad)],
                            capture_output=True, text=True)
    assert result.returncode == 3
    assert result.stderr.startswith("error: ") and "scan.nii.gz" in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    missing = subprocess.run([sys.executable, "-m", "napari_brain_dl.cli", "convert",
                              str(tmp_path / "nope.nii"), str(tmp_path / "out.nii.gz")],
                             capture_output=True, text=True)
    assert missing.returncode == 3 and "does not exist" in missing.stderr
    assert not (tmp_path / "out.nii.gz").exists()
