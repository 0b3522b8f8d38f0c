"""Benchmark: seconds to synthesise a whole exam with ``synth-mri``, against plain PyTorch, one process.

For each target (FLAIR, T2, T1) of brats_more/brats20_training_001 (240x240x155, 1 mm, raw files)
from its other three contrasts:

- ``synthesize``: the real path (files already loaded; model cached after a warm-up call):
  normalisation, resampling to the card's 2 mm grid and back, head crop, one network pass
  (channels-last), masking, marking;
- plain PyTorch: the same network once on the 1 mm head crop of the same input (default memory
  layout, no resampling): what a bare ``net(x)`` on the scan's own voxels costs.

Timings are wall seconds with ``--threads`` (default 2) torch threads; the issue's bar is a whole
exam in <= 60 s on 2 CPU cores. Quality is not measured here: it is cross-validated by
``scripts/eval_synthesis.py`` (bench/synth_cv.json). Exits 1 when an exam takes over 60 s.

Usage::

    python bench/bench_synthesis.py [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from napari_brain_dl.core import io  # noqa: E402
from napari_brain_dl.core.inference import get_model  # noqa: E402
from napari_brain_dl.core.models.synthnet import build_input, head_box, normalise  # noqa: E402
from napari_brain_dl.core.tasks.synthesize import synthesize  # noqa: E402

DATA = Path(os.environ.get("BRAIN_DL_SHARED_DATA", ROOT.parent / "shared" / "data"))
CASE = DATA / "brats_more" / "brats20_training_001"
FILES = {"T1": "t1.nii.gz", "T1c": "t1c.nii.gz", "T2": "t2.nii.gz", "FLAIR": "flair.nii.gz"}


def main(argv: list[str] | None = None) -> int:
    """Time every target; print a table; JSON on request."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    vols = {c: io.load(CASE / f) for c, f in FILES.items()}
    net = get_model("synth-mri", "cpu").module
    synthesize({"T1c": vols["T1c"]}, "FLAIR", device="cpu")  # warm-up: model loaded and cached
    rows = []
    for target in ("FLAIR", "T2", "T1"):
        sources = {c: v for c, v in vols.items() if c != target}
        t0 = time.perf_counter()
        steps: list[str] = []

        def progress(done: float, total: float, text: str, seen: list[str] = steps) -> None:
            seen.append(text)

        syn = synthesize(sources, target, device="cpu", progress=progress)
        full = time.perf_counter() - t0
        x = build_input({c: normalise(v.data) for c, v in sources.items()})
        box = head_box(np.any(x[:4] != 0, axis=0), 8)
        tensor = torch.from_numpy(np.ascontiguousarray(x[(slice(None), *box)][None]))
        t0 = time.perf_counter()
        with torch.no_grad():
            net(tensor)
        plain = time.perf_counter() - t0
        rows.append({"target": target, "sources": syn.sources, "synthesize_s": round(full, 2),
                     "plain_pytorch_one_pass_s": round(plain, 2), "ratio": round(full / plain, 2),
                     "progress_steps": len(steps), "crop": [s.stop - s.start for s in box]})
    print(f"\n{CASE.name}, {args.threads} torch threads ({torch.__version__})")
    print("| target | from | synthesize s (2 mm grid) | plain PyTorch s (1 mm crop) | ratio |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['target']} | {'+'.join(r['sources'])} | {r['synthesize_s']:.1f} | "
              f"{r['plain_pytorch_one_pass_s']:.1f} | {r['ratio']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0 if all(r["synthesize_s"] <= 60 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
