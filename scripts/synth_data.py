"""Subjects for the multi-contrast synthesis model ``synth-mri`` (read from ../shared/data, never copied).

16 subjects, all 240x240x155 1 mm LPS skull-stripped BraTS grids:
- 5 with T1, T1c, T2 and FLAIR of one visit: brats_gli_00001 (raw int16) and brats_more/* (raw
  integers and float);
- 4 brats2015_flair_t1c cases (FLAIR + T1c, z-scored inside the brain);
- 7 brats18_flair_t1_wt cases (FLAIR + T1, float).
Each contrast is normalised exactly as at inference (`synthnet.normalise`), so the network never
sees the source's own preprocessing. `FOLDS` groups them for cross-validation: every fold holds out
one four-contrast subject, so T2 is validated on five subjects.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from napari_brain_dl.core.models.synthnet import CONTRASTS, normalise

DATA = Path(os.environ.get("BRAIN_DL_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

_FOUR = {"T1": "t1.nii.gz", "T1c": "t1c.nii.gz", "T2": "t2.nii.gz", "FLAIR": "flair.nii.gz"}
SUBJECTS: dict[str, tuple[str, dict[str, str], str | None]] = {
    "brats_gli_00001": (
        "brats_gli_00001",
        {"T1": "t1n.nii.gz", "T1c": "t1c.nii.gz", "T2": "t2w.nii.gz", "FLAIR": "t2f.nii.gz"},
        "seg-BraTS23_1.nii.gz",
    ),
    "brats18_tcia05_396_1": ("brats_more/brats18_tcia05_396_1", _FOUR, "seg.nii.gz"),
    "tcga_du_7294": ("brats_more/tcga_du_7294", _FOUR, "seg_algorithmic.nii.gz"),
    "tcga_fg_6692": ("brats_more/tcga_fg_6692", _FOUR, "seg_algorithmic.nii.gz"),
    "brats20_training_001": ("brats_more/brats20_training_001", _FOUR, "seg_algorithmic.nii.gz"),
    **{
        f"brats_2013_pat000{i}_1": (
            f"brats2015_flair_t1c/brats_2013_pat000{i}_1",
            {"T1c": "T1c_subtrMeanDivStd.nii.gz", "FLAIR": "Flair_subtrMeanDivStd.nii.gz"},
            "OTMultiClass.nii.gz",
        )
        for i in (3, 4, 5, 6)
    },
    **{
        f"brats18_wt_case_{i}": (
            f"brats18_flair_t1_wt/case_{i}",
            {"T1": "t1.nii.gz", "FLAIR": "flair.nii.gz"},
            "whole_tumor.nii.gz",
        )
        for i in range(7)
    },
}
# Grouped folds: one four-contrast subject per fold, the others spread so each fold has ~3 subjects.
FOLDS: list[list[str]] = [
    ["brats_gli_00001", "brats_2013_pat0006_1", "brats18_wt_case_0"],
    ["brats18_tcia05_396_1", "brats_2013_pat0003_1", "brats18_wt_case_1", "brats18_wt_case_2"],
    ["tcga_du_7294", "brats_2013_pat0004_1", "brats18_wt_case_3"],
    ["tcga_fg_6692", "brats_2013_pat0005_1", "brats18_wt_case_4"],
    ["brats20_training_001", "brats18_wt_case_5", "brats18_wt_case_6"],
]


@dataclass
class Subject:
    """One exam: normalised contrasts (cropped to the head), whole-tumour mask, raw paths."""

    name: str
    images: dict[str, np.ndarray]
    tumour: np.ndarray
    paths: dict[str, Path] = field(default_factory=dict)
    label_path: Path | None = None
    affine: np.ndarray = field(default_factory=lambda: np.eye(4))

    @property
    def brain(self) -> np.ndarray:
        """Voxels inside every present contrast's foreground (where targets are scored)."""
        return np.all([v != 0 for v in self.images.values()], axis=0)


def paths(name: str) -> tuple[dict[str, Path], Path | None]:
    """{contrast: file} and the label file of a subject."""
    folder, files, labels = SUBJECTS[name]
    return {c: DATA / folder / f for c, f in files.items()}, (DATA / folder / labels if labels else None)


def read(path: Path) -> np.ndarray:
    """A scan's voxels as float32 (the file's own intensities)."""
    return np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)


def load_subject(name: str, crop: bool = True) -> Subject:
    """Load and normalise one subject; `crop` keeps the head's bounding box (+4 voxels)."""
    files, label_file = paths(name)
    images = {c: normalise(read(files[c])) for c in CONTRASTS if c in files}
    affine = nib.load(str(next(iter(files.values())))).affine
    tumour = read(label_file) > 0 if label_file else np.zeros(next(iter(images.values())).shape, bool)
    if crop:
        fg = np.any([v != 0 for v in images.values()], axis=0)
        idx = np.argwhere(fg)
        lo, hi = np.maximum(idx.min(0) - 4, 0), idx.max(0) + 5
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        images = {c: np.ascontiguousarray(v[box]) for c, v in images.items()}
        tumour = np.ascontiguousarray(tumour[box])
        affine = affine.copy()
        affine[:3, 3] = affine[:3, :3] @ lo + affine[:3, 3]  # the crop's own grid, same space
    return Subject(name, images, tumour, files, label_file, affine)


def contrasts_of(name: str) -> list[str]:
    """Contrasts a subject has, in `CONTRASTS` order."""
    return [c for c in CONTRASTS if c in SUBJECTS[name][1]]


def fold_of(name: str) -> int:
    """Index of the fold that holds `name` out."""
    return next(i for i, f in enumerate(FOLDS) if name in f)
