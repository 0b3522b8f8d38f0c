#!/usr/bin/env python
"""Subject overlap between the labelled FLAIR + T1c exams (cross-validation folds must not split a subject).

Every exam in ``prep_tumor_gpu.CASES`` that has FLAIR and T1c is on the same 240x240x155 LPS grid
(SRI24; the brats2015 examples too), so two exams of one subject (or one exam shipped twice) show
as a brain-mask Dice near 1 and a high FLAIR correlation inside the common mask, with no
registration. Prints the full matrix and flags pairs above the thresholds.

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


def flair(name: str) -> np.ndarray:
    """z-scored FLAIR of one exam (background 0)."""
    _kind, folder, files, _label, _lut = CASES[name]
    img = nib.load(str(DATA / folder / f"{files[0]}.nii.gz"))
    assert "".join(nib.aff2axcodes(img.affine)) == "LPS" and img.shape == (240, 240, 155), (name, img.shape)
    return zscore_foreground(np.asarray(img.dataobj, dtype=np.float32))


def main() -> int:
    names = [n for n, (_k, _f, files, _l, _t) in CASES.items() if files[0] and files[1]]
    vols = {n: flair(n) for n in names}
    flagged = []
    for a, b in itertools.combinations(names, 2):
        ma, mb = vols[a] != 0, vols[b] != 0
        md = 2 * float((ma & mb).sum()) / float(ma.sum() + mb.sum())
        both = ma & mb
        r = float(np.corrcoef(vols[a][both], vols[b][both])[0, 1])
        mark = "  <-- same subject?" if md > MASK_DICE and r > CORR else ""
        print(f"{a:24s} {b:24s} brain-mask Dice {md:.3f} FLAIR r {r:+.3f}{mark}", flush=True)
        if mark:
            flagged.append((a, b))
    print(f"{len(names)} exams, {len(flagged)} pair(s) flagged: {flagged}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
