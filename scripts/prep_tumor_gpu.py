#!/usr/bin/env python
"""Pack the labelled tumour exams of ../shared/data for ``scripts/train_tumor_gpu.py``.

Every exam becomes channels [FLAIR, T1c, T1, T2], each normalised with the card's own
``zscore_foreground`` (so training sees what ``predict`` feeds the network), cropped to the
head box, quantised to uint8 (0 = background, 1..255 = z in [-5, 5], steps of 0.04 SD) and
labels 0-3 (BraTS 2023: 1 core, 2 edema, 3 enhancing; WT-only cases: 2 = tumour). A missing
contrast is all zero. Everything goes into one lzma-compressed file (the GPU machine has
neither nibabel nor MONAI) with a JSON index:

    python scripts/prep_tumor_gpu.py --out .gpu/tumor_data.bin

Case kinds: ``expert`` (multi-class expert labels), ``algo`` (labels of BraTS algorithms),
``wt`` (expert whole-tumour label only: TC / ET are not supervised).
"""

from __future__ import annotations

import argparse
import json
import lzma
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from napari_brain_dl.core.models.prepost import zscore_foreground  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
B15 = "brats2015_flair_t1c"
MORE = "brats_more"
# name -> (kind, folder, files FLAIR/T1c/T1/T2 (None = missing), label file, label lookup table)
LUT_2013 = [0, 1, 2, 1, 3]  # 3 = non-enhancing core -> core, 4 = enhancing -> 3
LUT_124 = [0, 1, 2, 0, 3]  # 1 core, 2 edema, 4 enhancing
LUT_123 = [0, 1, 2, 3, 0]  # BraTS 2023
FOUR = ["flair", "t1c", "t1", "t2"]
CASES: dict[str, tuple] = {
    **{
        f"brats_2013_pat000{i}_1": (
            "expert", f"{B15}/brats_2013_pat000{i}_1",
            ["Flair_subtrMeanDivStd", "T1c_subtrMeanDivStd", None, None], "OTMultiClass", LUT_2013,
        )
        for i in (3, 4, 5, 6)
    },
    "brats18_tcia05_396_1": ("expert", f"{MORE}/brats18_tcia05_396_1", FOUR, "seg", LUT_124),
    "brats_gli_00001": ("algo", "brats_gli_00001", ["t2f", "t1c", "t1n", "t2w"], "seg-BraTS23_1", LUT_123),
    "tcga_du_7294": ("algo", f"{MORE}/tcga_du_7294", FOUR, "seg_algorithmic", LUT_124),
    "tcga_fg_6692": ("algo", f"{MORE}/tcga_fg_6692", FOUR, "seg_algorithmic", LUT_124),
    "brats20_training_001": ("algo", f"{MORE}/brats20_training_001", FOUR, "seg_algorithmic", LUT_123),
    **{
        f"wt_case_{i}": ("wt", f"brats18_flair_t1_wt/case_{i}", ["flair", None, "t1", None], "whole_tumor",
                         [0, 2])
        for i in range(7)
    },
}


def quantise(z: np.ndarray) -> np.ndarray:
    """z-scores (background exactly 0) -> uint8: 0 background, 1..255 for z in [-5, 5]."""
    q = np.rint((np.clip(z, -5, 5) + 5) / 10 * 254).astype(np.uint8) + 1
    q[z == 0] = 0
    return q


def dequantise(q: np.ndarray) -> np.ndarray:
    """Inverse of `quantise` (to 0.04 SD)."""
    return np.where(q == 0, 0.0, (q.astype(np.float32) - 1) / 254 * 10 - 5).astype(np.float32)


def load(name: str) -> tuple[np.ndarray, np.ndarray, tuple[slice, ...], tuple[int, ...]]:
    """uint8 image (4, box), labels (box), the head box and the full grid shape."""
    _kind, folder, files, label, lut = CASES[name]
    chans, shape = [], None
    for f in files:
        if f is None:
            chans.append(None)
            continue
        img = nib.load(str(DATA / folder / f"{f}.nii.gz"))
        assert "".join(nib.aff2axcodes(img.affine)) == "LPS", (name, f)
        x = np.asarray(img.dataobj, dtype=np.float32)
        shape = x.shape
        chans.append(zscore_foreground(x))
    z = np.stack([c if c is not None else np.zeros(shape, np.float32) for c in chans])
    raw = np.rint(np.asarray(nib.load(str(DATA / folder / f"{label}.nii.gz")).dataobj)).astype(np.int64)
    labels = np.asarray(lut, np.uint8)[raw]
    fg = np.any(z != 0, axis=0)
    idx = np.argwhere(fg)
    lo, hi = idx.min(0), idx.max(0) + 1
    box = tuple(slice(max(0, int(a) - 8), min(n, int(b) + 8)) for a, b, n in zip(lo, hi, shape, strict=True))
    return quantise(z[(slice(None), *box)]), labels[box], box, tuple(shape)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    index, blobs, offset = [], [], 0
    for name, (kind, *_rest) in CASES.items():
        img, lab, box, shape = load(name)
        present = [bool(img[c].any()) for c in range(4)]
        for arr, what in ((img, "image"), (lab, "labels")):
            raw = np.ascontiguousarray(arr).tobytes()
            blobs.append(raw)
            index.append({"case": name, "what": what, "kind": kind, "shape": list(arr.shape),
                          "offset": offset, "size": len(raw), "box": [[s.start, s.stop] for s in box],
                          "grid": list(shape), "present": present})
            offset += len(raw)
        print(f"{name}: {kind} box {img.shape[1:]} present {present} labels {np.unique(lab).tolist()}")
    data = lzma.compress(b"".join(blobs), preset=6)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    args.out.with_suffix(".json").write_text(json.dumps(index, indent=1), "utf-8")
    print(f"wrote {args.out} ({len(data) / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
