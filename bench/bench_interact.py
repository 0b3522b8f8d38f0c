"""Benchmark: Dice against interactions, and seconds per interaction, for tumour editing.

For each expert-labelled exam that neither shipped model trained on (brats_2013_pat0006_1:
held out by brats-tumor-seg and brats-tumor-click; brats18_tcia05_396_1: in neither model's
training data, see the cards in resources/models), a simulated user makes 0-10 interactions
with `TumourEditor`, starting from the automatic result (`segment_tumor`, its probabilities
kept) and from nothing. Dice of WT, TC and ET is printed after each interaction.

The simulated user looks at the whole-tumour error (prediction vs expert):
- first interaction from the automatic result, when extras outnumber misses twice (or the
  reverse): one boundary step tighter (looser); repeated while the Dice rises; a step that
  lowers it is undone (the undo counts as an interaction);
- otherwise, the largest error component (face-connected): when it is a shell (no voxel
  deeper than 2.5 mm inside it) a scribble across it on its fullest axial slice, from the
  outline to the error's typical depth (negative for an extra, positive for a miss);
  otherwise a click at its innermost voxel (the click protocol of the click model's card).
From nothing the first interaction is a positive click at the innermost tumour voxel.

Usage::

    OMP_NUM_THREADS=2 python bench/bench_interact.py [--data ../shared/data] [--steps 10]
        [--cache DIR] [--json bench/interact.json] [--plot docs/interaction_dice.png]

Timings are of the editor call alone on this machine (threads as set: the issue's target is
2 CPU cores), median and p95 per kind of interaction.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from napari_brain_dl.core import io  # noqa: E402
from napari_brain_dl.core.image_metrics import dice  # noqa: E402
from napari_brain_dl.core.tasks.tumor_edit import TumourEditor, _region  # noqa: E402

CASES = ("brats_2013_pat0006_1", "brats18_tcia05_396_1")
SHELL_MM = 2.5  # an error component is a shell when 90 % of its voxels are this close to its edge
WORSE = 0.002  # a change of the outline that lowers Dice this much is seen and undone


def load_case(data: Path, name: str) -> tuple[list[Any], np.ndarray]:
    """[FLAIR, T1c, T1, T2] Volumes (None when absent) and expert labels in BraTS 2023 values."""
    if name.startswith("brats_2013"):
        folder = data / "brats2015_flair_t1c" / name
        vols = [io.load(folder / "Flair_subtrMeanDivStd.nii.gz"), io.load(folder / "T1c_subtrMeanDivStd.nii.gz"),
                None, None]
        raw = np.rint(np.asarray(io.load(folder / "OTMultiClass.nii.gz").data)).astype(np.int64)
        return vols, np.array([0, 1, 2, 1, 3], np.uint8)[raw]
    folder = data / "brats_more" / name
    vols = [io.load(folder / f"{c}.nii.gz") for c in ("flair", "t1c", "t1", "t2")]
    raw = np.rint(np.asarray(io.load(folder / "seg.nii.gz").data)).astype(np.int64)
    return vols, np.array([0, 1, 2, 0, 3], np.uint8)[raw]


def automatic(vols: list[Any], name: str, cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities of the shipped automatic model (cached as .npz outside the repository)."""
    path = cache / f"{name}.npz" if cache else None
    if path and path.exists():
        z = np.load(path)
        return z["labels"], z["probabilities"]
    from napari_brain_dl.core.tasks.tumor import segment_tumor

    seg = segment_tumor(*vols, device="cpu")
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, labels=seg.labels.data, probabilities=seg.probabilities)
    return np.asarray(seg.labels.data), seg.probabilities


def scores(labels: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Dice of WT, TC, ET."""
    return {r: round(dice(_region(labels, r), _region(ref, r)), 4) for r in ("WT", "TC", "ET")}


def _largest(err: np.ndarray) -> tuple[int, np.ndarray]:
    lab, n = ndimage.label(err)
    if n == 0:
        return 0, err
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    k = int(sizes.argmax())
    return int(sizes[k]), lab == k


def next_action(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...],
                avoid: list[tuple[int, int, int]] | None = None) -> dict[str, Any] | None:
    """The simulated user's next click or scribble on the whole-tumour error (module docstring).

    Error components holding a voxel in `avoid` (where an undone interaction was) are skipped.
    """
    if not pred.any():
        from napari_brain_dl.core.tasks.tumor_edit import _innermost

        return {"kind": "click", "voxel": _innermost(ref, spacing), "positive": True}
    best = None
    for err, positive in ((ref & ~pred, True), (pred & ~ref, False)):
        if avoid:
            lab, _ = ndimage.label(err)
            bad = {int(lab[v]) for v in avoid} - {0}
            if bad:
                err = err & ~np.isin(lab, list(bad))
        size, comp = _largest(err)
        if size and (best is None or size > best[0]):
            best = (size, comp, positive)
    if best is None:
        return None
    _, comp, positive = best
    from napari_brain_dl.core.tasks.tumor_edit import _bbox, _innermost

    box = _bbox(comp, 2, comp.shape)
    c = comp[box]
    thickness = float(np.percentile(ndimage.distance_transform_edt(c, sampling=spacing)[c], 90))
    if thickness > SHELL_MM:
        return {"kind": "click", "voxel": _innermost(comp, spacing), "positive": positive}
    # a shell: a stroke across it on its fullest axial slice, from the outline to its typical depth
    k = int(np.argmax(c.sum(axis=(0, 1))))
    inside = pred[box] if not positive else ~pred[box]
    depth = ndimage.distance_transform_edt(inside, sampling=spacing)
    target = float(np.percentile(depth[c], 75))
    sl_c, sl_d = c[:, :, k], depth[:, :, k]
    cand = np.argwhere(sl_c)
    e = cand[np.argmin(np.abs(sl_d[sl_c] - target) - 1e-3 * sl_d[sl_c])]
    _, idx = ndimage.distance_transform_edt(inside[:, :, k], sampling=spacing[:2], return_indices=True)
    o = idx[:, e[0], e[1]]  # nearest voxel across the outline
    start = np.array([o[0], o[1], k]) + [b.start for b in box]
    end = np.array([e[0], e[1], k]) + [b.start for b in box]
    return {"kind": "scribble", "points": [start.tolist(), end.tolist()], "positive": positive,
            "voxel": tuple(int(v) for v in end)}


def simulate(editor: TumourEditor, ref: np.ndarray, steps: int, use_boundary: bool) -> list[dict[str, Any]]:
    """Run the simulated user; one row per interaction: kind, Dice per region, seconds."""
    wt_ref = ref > 0
    rows: list[dict[str, Any]] = [{"kind": "start", **scores(editor.labels, ref), "seconds": 0.0}]
    boundary_dir = 0
    avoid: list[tuple[int, int, int]] = []
    if use_boundary:
        pred = editor.labels > 0
        extra, miss = int((pred & ~wt_ref).sum()), int((wt_ref & ~pred).sum())
        boundary_dir = -1 if extra > 2 * miss else (1 if miss > 2 * extra else 0)
    while len(rows) <= steps:
        before = rows[-1]["WT"]
        if boundary_dir:
            t0 = time.perf_counter()
            editor.boundary("WT", boundary_dir)
            sec = time.perf_counter() - t0
            rows.append({"kind": "boundary", **scores(editor.labels, ref), "seconds": sec})
            if rows[-1]["WT"] <= before:
                boundary_dir = 0
                if len(rows) <= steps:
                    t0 = time.perf_counter()
                    editor.undo()
                    rows.append({"kind": "undo", **scores(editor.labels, ref), "seconds": time.perf_counter() - t0})
            continue
        act = next_action(editor.labels > 0, wt_ref, editor.spacing, avoid)
        if act is None:
            break
        t0 = time.perf_counter()
        try:
            if act["kind"] == "click":
                editor.click(act["voxel"], act["positive"])
            else:
                editor.scribble(act["points"], act["positive"], radius_mm=0.5)
        except ValueError as exc:
            print("  skipped:", exc, flush=True)
            break
        sec = time.perf_counter() - t0
        rows.append({"kind": f"{act['kind']} {'+' if act['positive'] else '-'}", **scores(editor.labels, ref),
                     "seconds": sec})
        if rows[-1]["WT"] < before - WORSE and len(rows) <= steps:  # it looks worse: the user undoes it
            avoid.append(tuple(int(v) for v in act["voxel"]))
            t0 = time.perf_counter()
            editor.undo()
            rows.append({"kind": "undo", **scores(editor.labels, ref), "seconds": time.perf_counter() - t0})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--cache", default=None, help="folder for the automatic results (outside the repository)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--plot", default=None)
    ap.add_argument("--threads", type=int, default=0,
                    help="click model threads (0: the default, all cores but one)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(max(1, args.threads or (os.cpu_count() or 2)))
    from napari_brain_dl.core.tasks.click_segment import ClickSegmenter

    report: dict[str, Any] = {"cases": {}, "threads": args.threads, "os_cpus": os.cpu_count()}
    timings: dict[str, list[float]] = {}
    for name in CASES:
        vols, ref = load_case(Path(args.data), name)
        labels, prob = automatic(vols, name, Path(args.cache) if args.cache else None)
        seg = ClickSegmenter(vols[0], vols[1], device="cpu", threads=args.threads or None)
        report["cases"][name] = {}
        for start in ("automatic", "nothing"):
            if start == "automatic":
                ed = TumourEditor(vols[0], vols[1], labels=labels, probabilities=prob, segmenter=seg)
            else:
                ed = TumourEditor(vols[0], vols[1], segmenter=seg)
            rows = simulate(ed, ref, args.steps, use_boundary=start == "automatic")
            report["cases"][name][start] = rows
            for r in rows[1:]:
                timings.setdefault(r["kind"].split()[0], []).append(r["seconds"])
            for region in ("WT", "TC", "ET"):
                print(f"{name:22s} from {start:9s} {region}: " + " ".join(f"{r[region]:.3f}" for r in rows),
                      flush=True)
            print(f"{'':22s} {'':14s} steps: " + ", ".join(r["kind"] for r in rows[1:]), flush=True)
    report["seconds"] = {
        k: {"n": len(v), "median": round(statistics.median(v), 3),
            "p95": round(float(np.percentile(v, 95)), 3), "max": round(max(v), 3)}
        for k, v in timings.items()
    }
    for k, v in report["seconds"].items():
        print(f"seconds per {k:9s}: median {v['median']:.3f}  p95 {v['p95']:.3f}  max {v['max']:.3f}  (n={v['n']})")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    if args.plot:
        plot(report, Path(args.plot))
    return 0


def plot(report: dict[str, Any], path: Path) -> None:
    """Dice against interactions: one panel per region, a line per case and start."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    for ax, region in zip(axes, ("WT", "TC", "ET"), strict=True):
        for name, starts in report["cases"].items():
            for start, rows in starts.items():
                ax.plot(range(len(rows)), [r[region] for r in rows], marker="o", ms=3,
                        ls="-" if start == "automatic" else "--", label=f"{name} from {start}")
        ax.set_title(region)
        ax.set_xlabel("interactions")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Dice vs expert")
    axes[0].set_ylim(0, 1)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
