"""Exams: contrast guessing, one reference grid, resampling and rigid registration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_brain_dl.core import io
from napari_brain_dl.core.study import (
    align_study,
    fov_overlap,
    guess_contrast,
    load_study,
    needs_registration,
    onto_reference,
    resample_to,
    unique_names,
)
from napari_brain_dl.core.volume import Volume


@pytest.mark.parametrize(("name", "contrast"), [
    ("t1c.nii.gz", "t1c"), ("t1n.nii.gz", "t1"), ("t2f.nii.gz", "flair"), ("t2w.nii.gz", "t2"),
    ("Flair_subtrMeanDivStd.nii.gz", "flair"), ("T1c_subtrMeanDivStd.nii.gz", "t1c"),
    ("sub-01_T1w.nii.gz", "t1"), ("sub-01_T2w.nii.gz", "t2"), ("sub-01_FLAIR.nii.gz", "flair"),
    ("chris_PD.nii.gz", "pd"), ("chris_MRA.nii.gz", "mra"), ("MR_Gd.nii.gz", "t1c"),
    ("brainmask.nii.gz", "other"),
])
def test_guess_contrast(name: str, contrast: str) -> None:
    assert guess_contrast(name) == contrast


def test_unique_names() -> None:
    assert unique_names(["t1", "t1", "t2", "t1"]) == ["t1", "t1_2", "t2", "t1_3"]


def test_brats_exam_is_already_aligned(data_dir: Path) -> None:
    folder = data_dir / "brats_gli_00001"
    study = load_study([folder / f for f in ("t1c.nii.gz", "t1n.nii.gz", "t2f.nii.gz", "t2w.nii.gz")])
    assert list(study.volumes) == ["t1c", "t1", "flair", "t2"]
    assert study.alignment == {"t1c": "reference", "t1": "same grid", "flair": "same grid", "t2": "same grid"}
    # No interpolation when grids agree: the data is the file's data.
    assert study.volumes["flair"].data is study.natives["flair"].data


def test_a_flipped_copy_is_reordered_exactly_not_resampled(data_dir: Path, tmp_path: Path) -> None:
    """The same FLAIR saved RAS (nibabel canonical) comes back onto the LPS T1c grid voxel for voxel."""
    import nibabel as nib

    folder = data_dir / "brats_gli_00001"
    ref = io.load(folder / "t1c.nii.gz")
    ras = nib.as_closest_canonical(nib.load(folder / "t2f.nii.gz"))
    nib.save(ras, tmp_path / "flair_ras.nii.gz")
    flipped = io.load(tmp_path / "flair_ras.nii.gz")
    assert flipped.axcodes == "RAS" and ref.axcodes == "LPS"
    notes: list[str] = []
    back = onto_reference(flipped, ref, "FLAIR", "T1c", notes)
    assert notes == ["FLAIR's voxel axes were reordered onto T1c's grid (exact, no interpolation)."]
    assert back.same_grid(ref, atol=0) and back.data.dtype == flipped.data.dtype
    np.testing.assert_array_equal(back.data, io.load(folder / "t2f.nii.gz").data)
    shifted = flipped.with_data(flipped.data)
    shifted.affine = flipped.affine.copy()
    shifted.affine[0, 3] += 0.5  # half a voxel off: no exact reordering exists, so it is resampled
    notes.clear()
    assert onto_reference(shifted, ref, "FLAIR", "T1c", notes).same_grid(ref, atol=0)
    assert notes == ["FLAIR was resampled onto T1c's grid (linear interpolation)."]


def test_different_grids_are_resampled_onto_reference(data_dir: Path) -> None:
    folder = data_dir / "niivue_chris"
    study = load_study([folder / "chris_PD.nii.gz", folder / "chris_t1.nii.gz"], reference="t1")
    t1, pd = study.volumes["t1"], study.volumes["pd"]
    assert study.alignment["pd"] == "resampled"
    assert pd.shape == t1.shape and np.array_equal(pd.affine, t1.affine)
    # A world point maps to the same intensity in the native PD and the resampled PD.
    native = study.natives["pd"]
    ijk_native = np.array([95, 128, 27])
    world = native.affine @ np.r_[ijk_native, 1]
    ijk_ref = np.round(np.linalg.solve(t1.affine, world)[:3]).astype(int)
    assert abs(float(pd.data[tuple(ijk_ref)]) - float(native.data[tuple(ijk_native)])) < 25


def test_labels_resample_with_nearest_neighbour(data_dir: Path) -> None:
    labels = io.load(data_dir / "brats_gli_00001" / "seg-BraTS23_1.nii.gz")
    target = Volume(np.zeros((120, 120, 78), np.uint8), labels.affine @ np.diag([2.0, 2, 2, 1]))
    out = resample_to(labels, target)
    assert out.data.dtype == labels.data.dtype
    assert set(np.unique(out.data)) <= set(np.unique(labels.data))


def test_rigid_registration_recovers_a_known_shift(data_dir: Path) -> None:
    t1 = io.load(data_dir / "niivue_templates" / "MNI152_T1_2mm.nii.gz", name="t1")
    shifted = t1.affine.copy()
    shifted[:3, 3] += [8.0, -6.0, 4.0]
    moving = Volume(t1.data, shifted, name="t2", meta={"sform_code": 1})
    t1.meta["sform_code"] = 4
    assert needs_registration(t1, moving)  # MNI space vs scanner space
    study = align_study({"t1": t1, "t2": moving})
    assert study.alignment["t2"] == "registered (rigid)"
    mask = t1.data > np.percentile(t1.data, 60)
    corr = np.corrcoef(study.volumes["t2"].data[mask], t1.data[mask])[0, 1]
    assert corr > 0.98
    without = resample_to(moving, t1)  # headers alone leave the 8 mm shift
    assert np.corrcoef(without.data[mask], t1.data[mask])[0, 1] < corr - 0.05


def test_fov_overlap_and_bad_reference(data_dir: Path) -> None:
    t1 = io.load(data_dir / "niivue_templates" / "MNI152_T1_2mm.nii.gz")
    assert fov_overlap(t1, t1) == pytest.approx(1.0)
    far = Volume(t1.data, t1.affine @ np.array([[1, 0, 0, 500], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]))
    assert fov_overlap(t1, far) == 0.0
    with pytest.raises(ValueError, match="not one of the series"):
        align_study({"t1": t1}, reference="flair")
