"""Training data for the tumour models: the visible BraTS cases, normalised as the models see them.

Cases (../shared/data, never copied into the repository):
- brats2015_flair_t1c/brats_2013_pat000{3,4,5,6}_1: FLAIR + T1c z-scored, expert labels
  0 bg, 1 necrosis, 2 edema, 3 non-enhancing, 4 enhancing -> BraTS 2023: 1,3 -> 1, 2 -> 2, 4 -> 3.
- brats_gli_00001: raw int16 FLAIR, T1c, T1, T2; labels of a challenge-winning algorithm (BraTS 2023).

Every case becomes channels [FLAIR, T1c, T1, T2] normalised with the card's own
``zscore_foreground`` (a missing contrast is all zero) and labels 0-3, cropped to the head.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from napari_brain_dl.core.models.prepost import zscore_foreground

DATA = Path(os.environ.get("BRAIN_DL_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
EXPERT = [f"brats_2013_pat000{i}_1" for i in (3, 4, 5, 6)]
VALIDATION = ["brats_2013_pat0006_1"]  # kept out of every training run
CONTRASTS = ("FLAIR", "T1c", "T1", "T2")


@dataclass
class Case:
    """One exam: image (4, X, Y, Z) float32, labels (X, Y, Z) uint8 in BraTS 2023 values."""

    name: str
    image: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    expert: bool


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(str(path))
    return np.asarray(img.dataobj, dtype=np.float32), img.affine


def load_case(name: str, *, crop: bool = True) -> Case:
    """Load one case by folder name (an EXPERT name or "brats_gli_00001")."""
    if name.startswith("brats_2013"):
        folder = DATA / "brats2015_flair_t1c" / name
        flair, affine = _read(folder / "Flair_subtrMeanDivStd.nii.gz")
        t1c, _ = _read(folder / "T1c_subtrMeanDivStd.nii.gz")
        t1 = t2 = np.zeros_like(flair)
        raw, _ = _read(folder / "OTMultiClass.nii.gz")
        lut = np.array([0, 1, 2, 1, 3], np.uint8)
        labels = lut[np.rint(raw).astype(np.int64)]
        expert = True
    else:
        folder = DATA / name
        flair, affine = _read(folder / "t2f.nii.gz")
        t1c, _ = _read(folder / "t1c.nii.gz")
        t1, _ = _read(folder / "t1n.nii.gz")
        t2, _ = _read(folder / "t2w.nii.gz")
        labels = np.rint(_read(folder / "seg-BraTS23_1.nii.gz")[0]).astype(np.uint8)
        expert = False
    image = np.stack([zscore_foreground(c) for c in (flair, t1c, t1, t2)])
    if crop:
        box = head_box(image, margin=8)
        image, labels = image[(slice(None), *box)], labels[box]
    return Case(name, np.ascontiguousarray(image), np.ascontiguousarray(labels), affine, expert)


def head_box(image: np.ndarray, margin: int = 8) -> tuple[slice, ...]:
    """Bounding box of the non-zero voxels of any channel, plus `margin`."""
    fg = np.any(image != 0, axis=0)
    idx = np.argwhere(fg)
    lo, hi = idx.min(0), idx.max(0) + 1
    return tuple(
        slice(max(0, int(a) - margin), min(n, int(b) + margin))
        for a, b, n in zip(lo, hi, fg.shape, strict=True)
    )


def training_cases() -> list[Case]:
    """All visible cases except the validation ones."""
    names = [n for n in EXPERT if n not in VALIDATION] + ["brats_gli_00001"]
    return [load_case(n) for n in names]


def regions(labels: np.ndarray) -> np.ndarray:
    """Labels 0-3 -> (3, ...) float32 channels TC (1+3), WT (1+2+3), ET (3)."""
    return np.stack([(labels == 1) | (labels == 3), labels > 0, labels == 3]).astype(np.float32)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks (1.0 when both are empty)."""
    a, b = a.astype(bool), b.astype(bool)
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * (a & b).sum() / s)


def region_dice(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """WT / TC / ET Dice of two BraTS 2023 label maps."""
    p, r = regions(pred), regions(ref)
    return {"WT": dice(p[1], r[1]), "TC": dice(p[0], r[0]), "ET": dice(p[2], r[2])}


# ---------------------------------------------------------------- augmentation
def random_patch(
    rng: np.random.Generator, image: np.ndarray, labels: np.ndarray, size: int, p_tumor: float = 0.67
) -> tuple[np.ndarray, np.ndarray]:
    """A `size`^3 patch (zero padded), centred on a tumour voxel with probability `p_tumor`."""
    shape = np.array(labels.shape)
    if rng.random() < p_tumor and labels.any():
        pts = np.argwhere(labels > 0)
        centre = pts[rng.integers(len(pts))]
    else:
        centre = np.array([rng.integers(0, n) for n in shape])
    start = centre - size // 2 + rng.integers(-size // 4, size // 4 + 1, 3)
    img = np.zeros((image.shape[0], size, size, size), np.float32)
    lab = np.zeros((size, size, size), np.uint8)
    src = tuple(slice(max(0, s), min(n, s + size)) for s, n in zip(start, shape, strict=True))
    dst = tuple(slice(sl.start - s, sl.stop - s) for sl, s in zip(src, start, strict=True))
    img[(slice(None), *dst)] = image[(slice(None), *src)]
    lab[dst] = labels[src]
    return img, lab


def spatial(rng: np.random.Generator, img: np.ndarray, lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Random flips, axis permutation in-plane, rotation (+-15 deg) and scaling (0.85-1.15)."""
    for ax in range(3):
        if rng.random() < 0.5:
            img, lab = np.flip(img, ax + 1), np.flip(lab, ax)
    if rng.random() < 0.3:
        img, lab = np.swapaxes(img, 1, 2), np.swapaxes(lab, 0, 1)
    if rng.random() < 0.5:
        angles = np.deg2rad(rng.uniform(-15, 15, 3))
        rot = np.eye(3)
        for i, a in enumerate(angles):
            j, k = [d for d in range(3) if d != i]
            r = np.eye(3)
            r[j, j] = r[k, k] = np.cos(a)
            r[j, k], r[k, j] = -np.sin(a), np.sin(a)
            rot = rot @ r
        mat = rot * rng.uniform(0.85, 1.15)
        centre = (np.array(lab.shape) - 1) / 2
        offset = centre - mat @ centre
        img = np.stack([ndimage.affine_transform(c, mat, offset, order=1) for c in img])
        lab = ndimage.affine_transform(lab, mat, offset, order=0)
    return np.ascontiguousarray(img), np.ascontiguousarray(lab)


def intensity(rng: np.random.Generator, img: np.ndarray, drop_optional: float = 0.5) -> np.ndarray:
    """Per-channel scale/shift, gamma, smooth bias field, noise; T1/T2 dropped at random."""
    out = img.copy()
    for c in range(out.shape[0]):
        x = out[c]
        fg = x != 0
        if not fg.any():
            continue
        if c >= 2 and rng.random() < drop_optional:
            out[c] = 0
            continue
        if rng.random() < 0.3:  # gamma on a 0-1 rescaled copy
            lo, hi = x[fg].min(), x[fg].max()
            g = np.exp(rng.uniform(-0.35, 0.35))
            x[fg] = lo + (hi - lo) * ((x[fg] - lo) / max(hi - lo, 1e-6)) ** g
        if rng.random() < 0.3:  # low-frequency bias field
            coarse = rng.normal(0, 0.15, (4, 4, 4))
            field = ndimage.zoom(coarse, np.array(x.shape) / 4, order=3)[
                : x.shape[0], : x.shape[1], : x.shape[2]
            ]
            x[fg] *= np.exp(field[fg])
        x[fg] = x[fg] * rng.uniform(0.85, 1.15) + rng.uniform(-0.2, 0.2)
        if rng.random() < 0.2:
            x[fg] += rng.normal(0, rng.uniform(0.02, 0.1), int(fg.sum()))
    return out


def cpu_name() -> str:
    """The CPU model (for model cards), e.g. "AMD EPYC"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ---------------------------------------------------------------- every labelled FLAIR + T1c exam
# Added for the click model (scripts/train_click_seg.py); the file table is prep_tumor_gpu.CASES.
# brats18_flair_t1_wt has no T1c and is not listed.
FLAIR_T1C = [*EXPERT, "brats_gli_00001", "brats18_tcia05_396_1", "tcga_du_7294", "tcga_fg_6692",
             "brats20_training_001"]


def exam_files(name: str) -> tuple[Path, Path, Path, np.ndarray]:
    """FLAIR, T1c and label paths of a `FLAIR_T1C` exam, and the lookup table to BraTS 2023 labels."""
    from prep_tumor_gpu import CASES  # scripts/ is on sys.path wherever this module is imported

    _kind, folder, files, label, lut = CASES[name]
    return (DATA / folder / f"{files[0]}.nii.gz", DATA / folder / f"{files[1]}.nii.gz",
            DATA / folder / f"{label}.nii.gz", np.asarray(lut, np.uint8))


def load_exam(name: str, *, crop: bool = True) -> Case:
    """Like `load_case` for every `FLAIR_T1C` exam; T1/T2 stay zero (the click model reads FLAIR + T1c)."""
    flair_path, t1c_path, label_path, lut = exam_files(name)
    flair, affine = _read(flair_path)
    t1c, _ = _read(t1c_path)
    labels = lut[np.rint(_read(label_path)[0]).astype(np.int64)]
    zero = np.zeros_like(flair)
    image = np.stack([zscore_foreground(flair), zscore_foreground(t1c), zero, zero])
    if crop:
        box = head_box(image, margin=8)
        image, labels = image[(slice(None), *box)], labels[box]
    expert = name in EXPERT or name == "brats18_tcia05_396_1"
    return Case(name, np.ascontiguousarray(image), np.ascontiguousarray(labels), affine, expert)
