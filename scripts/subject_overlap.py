#!/usr/bin/env python
"""Subject overlap between the labelled FLAIR + T1c exams (cross-validation folds must not split a subject).

Every exam in ``prep_tumor_gpu.CASES`` that has FLAIR and T1c is on the same 240x240x155 LPS grid
(SRI24; the brats2015 examples too), so two exams of one subject (or one exam shipped twice) show
as a brain-mask Dice near 1 and a high FLAIR correlation inside the common mask, with no
registration. Prints each brain volume, then per pair the brain-mask Dice, the FLAIR correlation
and the whole-tumour Dice (two large tumours in the same place raise the correlation of different
subjects), and flags pairs above both thresholds.

    python scripts/subject_overlap.py
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from prep_tumor_gpu import CASES, DATA  # noqa: E402

from napari_brain_dl.core.models.prepost import zscore_foreground  # noqa: E402

MASK_DICE, CORR = 0.9, 0.5  # a pair above both is the same subject


def flair_wt(name: str) -> tuple[np.ndarray, np.ndarray]:
    """z-scored FLAIR of one exam (background 0) and its whole-tumour mask."""
    _kind, folder, files, label, lut = CASES[name]
    img = nib.load(str(DATA / folder / f"{files[0]}.nii.gz"))
    assert "".join(nib.aff2axcodes(img.affine)) == "LPS" and img.shape == (240, 240, 155), (name, img.shape)
    raw = np.rint(np.asarray(nib.load(str(DATA / folder / f"{label}.nii.gz")).dataobj)).astype(np.int64)
    return zscore_foreground(np.asarray(img.dataobj, dtype=np.float32)), np.asarray(lut)[raw] > 0


def main() -> int:
    names = [n for n, (_k, _f, files, _l, _t) in CASES.items() if files[0] and files[1]]
    vols, wts = {}, {}
    for n in names:
        vols[n], wts[n] = flair_wt(n)
        brain, wt = int((vols[n] != 0).sum()) / 1e6, int(wts[n].sum()) / 1e3
        print(f"{n:24s} brain {brain:.2f} L, whole tumour {wt:.0f} mL")
    flagged = []
    for a, b in itertools.combinations(names, 2):
        ma, mb = vols[a] != 0, vols[b] != 0
        md = 2 * float((ma & mb).sum()) / float(ma.sum() + mb.sum())
        both = ma & mb
        r = float(np.corrcoef(vols[a][both], vols[b][both])[0, 1])
        wd = 2 * float((wts[a] & wts[b]).sum()) / float(wts[a].sum() + wts[b].sum())
        mark = "  <-- same subject?" if md > MASK_DICE and r > CORR else ""
        print(f"{a:24s} {b:24s} brain-mask Dice {md:.3f} FLAIR r {r:+.3f} WT Dice {wd:.3f}{mark}", flush=True)
        if mark:
            flagged.append((a, b))
    print(f"{len(names)} exams, {len(flagged)} pair(s) flagged: {flagged}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
