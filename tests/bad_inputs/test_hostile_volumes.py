"""Hostile or malformed volumes beyond the corpus: odd DICOM geometry, colour voxels, odd dtypes.

Each file is generated here (the DICOM series with the corpus's pydicom writer, then edited).
A refusal is exit code 2 with one error line, no traceback and no file written.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from bad_inputs.commands import Outcome, run_cli
from bad_inputs.corpus import SPACING, _dicom_series, head
from napari_brain_dl.core import io


def _refused(result: Outcome, *words: str) -> list[str]:
    """What is wrong with a refusal (empty when it is one clean sentence holding `words`)."""
    problems = []
    if result.code != 2 or "Traceback" in result.err or len(result.error_lines) != 1:
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

