"""Benchmark: Dice against interactions, and seconds per interaction, for tumour editing.

For two expert-labelled exams (brats_2013_pat0006_1: held out by brats-tumor-seg;
brats18_tcia05_396_1: not in its training data; the shipped brats-tumor-click trained on both,
so bench its fold A with ``--click-model``, see the cards in resources/models), a simulated user
makes 0-10 interactions
with `TumourEditor`, starting from the automatic result (`segment_tumor`, its probabilities
kept; its whole tumour re-outlined by the benched click model as `segment` does) and from
nothing. Dice of WT, TC and ET is printed after each interaction.

Two simulated users, each from the automatic result and from nothing:

- clicks + scribbles (whole tumour, as the issue asks): from the automatic result, when the
  extras outnumber the misses twice (or the reverse), boundary steps tighter (looser) while
  the Dice rises (a step that lowers it is undone; the undo counts). Then, each time, the
  largest error component (face-connected): when it is a shell (90 % of its voxels within
  2.5 mm of its edge) a scribble across it on its fullest axial slice, from the outline to the
  error's typical depth (negative for an extra, positive for a miss); otherwise a click at its
  innermost voxel (the click model card's protocol). An interaction that lowers the Dice by
  more than 0.002 is undone (counted) and that error is not tried again.
- lassos: the same boundary steps, then each interaction for the region (WT, TC, ET from the
  automatic result; WT from nothing) with the most wrong voxels: a lasso tracing the expert
  outline of that region on the axial slice where it is most wrong.
From nothing the first interaction is a positive click at the innermost tumour voxel.

``--no-t1c``: exams without T1c (no contrast agent), whole tumour only, clicks + scribbles. T1
stands in for the click model's T1c as `segment` and Refine do; the automatic result is the
no-T1c network's, re-outlined the same way. The seven whole-tumour-only exams
(``brats18_wt_case_K``, brats18_flair_t1_wt/case_K) were never seen by a click model; the
no-T1c network trained on them, so only "from nothing" is clean there. An expert exam with T1
(brats18_tcia05_396_1) is benched with T1c and T2 left out.

Usage::

    OMP_NUM_THREADS=2 python bench/bench_interact.py [--data ../shared/data] [--steps 10]
        [--cache DIR] [--json bench/interact.json] [--plot docs/interaction_dice.png]
        [--click-model CARD.yaml] [--fold CARD EXAM...] [--no-t1c]

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


WT_ONLY = tuple(f"brats18_wt_case_{k}" for k in range(7))  # brats18_flair_t1_wt: FLAIR, T1, whole tumour


def load_case(data: Path, name: str, no_t1c: bool = False) -> tuple[list[Any], np.ndarray]:
    """[FLAIR, T1c, T1, T2] Volumes (None when absent) and expert labels in BraTS 2023 values
    (a whole-tumour-only exam: 2 inside it); `no_t1c` leaves T1c and T2 out."""
    if name in WT_ONLY:
        folder = data / "brats18_flair_t1_wt" / name.removeprefix("brats18_wt_")
        wt = np.asarray(io.load(folder / "whole_tumor.nii.gz").data) > 0
        vols = [io.load(folder / "flair.nii.gz"), None, io.load(folder / "t1.nii.gz"), None]
        return vols, 2 * wt.astype(np.uint8)
    if no_t1c:
        vols, ref = load_case(data, name)
        return [vols[0], None, vols[2], None], ref
    if name.startswith("brats_2013"):
        folder = data / "brats2015_flair_t1c" / name
        vols = [
            io.load(folder / "Flair_subtrMeanDivStd.nii.gz"),
            io.load(folder / "T1c_subtrMeanDivStd.nii.gz"),
            None,
            None,
        ]
        raw = np.rint(np.asarray(io.load(folder / "OTMultiClass.nii.gz").data)).astype(np.int64)
        return vols, np.array([0, 1, 2, 1, 3], np.uint8)[raw]
    folder = data / "brats_more" / name
    vols = [io.load(folder / f"{c}.nii.gz") for c in ("flair", "t1c", "t1", "t2")]
    raw = np.rint(np.asarray(io.load(folder / "seg.nii.gz").data)).astype(np.int64)
    return vols, np.array([0, 1, 2, 0, 3], np.uint8)[raw]


def automatic(vols: list[Any], name: str, cache: Path | None,
              click_model: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities of the shipped automatic model (cached as .npz outside the repository).

    The model's own result (``segment_tumor(click_refine=False)``) is what is cached; with
    `click_model`, its whole tumour is then re-outlined as `segment` does (`refine_whole_tumour`)
    with that click model, so a fold's card keeps the bench clean of its held-out exams.
    """
    no_t1c = vols[1] is None
    path = cache / f"{name}{'_no_t1c' if no_t1c else ''}.npz" if cache else None
    if path and path.exists():
        z = np.load(path)
        labels, prob = z["labels"], z["probabilities"]
        wt_threshold = float(z["wt_threshold"]) if "wt_threshold" in z else None
    else:
        from napari_brain_dl.core.tasks.tumor import segment_tumor

        seg = segment_tumor(*vols, device="cpu", click_refine=False)
        labels, prob = np.asarray(seg.labels.data), seg.probabilities
        wt_threshold = float(seg.provenance["thresholds"]["WT"])
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, labels=labels, probabilities=prob, wt_threshold=wt_threshold)
    if click_model is None:
        return labels, prob
    from napari_brain_dl.core.tasks.tumor_cascade import refine_whole_tumour

    if wt_threshold is None:  # a cache written before the threshold was kept: the default model's
        from napari_brain_dl.core.models import prepost, resolve_model
        from napari_brain_dl.core.tasks.tumor import DEFAULT_MODEL

        step = next(s for s in resolve_model(DEFAULT_MODEL).postprocessing if s.get("op") == "brats_regions")
        wt_threshold = prepost.region_thresholds(step.get("threshold", 0.5))["WT"]
    second = vols[2] if no_t1c else vols[1]  # T1 stands in for the click model's T1c
    labels, prob, _ = refine_whole_tumour(labels, vols[0], second, prob, wt_threshold, model=click_model,
                                          device="cpu")
    return labels, prob


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


def next_action(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: tuple[float, ...],
    region: str = "WT",
    avoid: list[tuple[int, int, int]] | None = None,
    tool: str = "strokes",
) -> dict[str, Any] | None:
    """The simulated user's next click or scribble on one region's error (module docstring).

    Error components holding a voxel in `avoid` (where an undone interaction was) are skipped.
    Clicks exist for the whole tumour only: core and enhancing tumour always get a lasso.
    """
    from napari_brain_dl.core.tasks.tumor_edit import _bbox
    from napari_brain_dl.core.tasks.tumor_prompts import innermost_voxel

    if region != "WT" or (tool == "lasso" and pred.any()):  # the user traces the expert outline
        return lasso_action(pred, ref, region, avoid)
    if not pred.any():
        return {"kind": "click", "voxel": innermost_voxel(ref, spacing), "positive": True, "region": region}
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
    box = _bbox(comp, 2, comp.shape)
    c = comp[box]
    thickness = float(np.percentile(ndimage.distance_transform_edt(c, sampling=spacing)[c], 90))
    if thickness > SHELL_MM and region == "WT":
        voxel = innermost_voxel(comp, spacing)
        return {"kind": "click", "voxel": voxel, "positive": positive, "region": region}
    # a stroke across the error on its fullest axial slice, from the outline to its typical depth
    k = int(np.argmax(c.sum(axis=(0, 1))))
    inside = pred[box] if not positive else ~pred[box]
    depth = ndimage.distance_transform_edt(inside, sampling=spacing)
    target = float(np.percentile(depth[c], 75 if thickness <= SHELL_MM else 100))
    sl_c, sl_d = c[:, :, k], depth[:, :, k]
    cand = np.argwhere(sl_c)
    e = cand[np.argmin(np.abs(sl_d[sl_c] - target) - 1e-3 * sl_d[sl_c])]
    _, idx = ndimage.distance_transform_edt(inside[:, :, k], sampling=spacing[:2], return_indices=True)
    o = idx[:, e[0], e[1]]  # nearest voxel across the outline
    start = np.array([o[0], o[1], k]) + [b.start for b in box]
    end = np.array([e[0], e[1], k]) + [b.start for b in box]
    return {
        "kind": "scribble",
        "points": [start.tolist(), end.tolist()],
        "positive": positive,
        "voxel": tuple(int(v) for v in end),
        "region": region,
    }


def lasso_action(
    pred: np.ndarray, ref: np.ndarray, region: str, avoid: list[tuple[int, int, int]] | None = None
) -> dict[str, Any] | None:
    """A lasso along the largest reference outline on the axial slice with the most wrong voxels.

    Slices of `avoid` (where an undone lasso was drawn) are skipped.
    """
    from skimage import measure

    wrong = (pred ^ ref).sum(axis=(0, 1))
    skip = {int(v[2]) for v in avoid or []}
    for k in np.argsort(wrong)[::-1][:8]:
        if not ref[:, :, k].any() or wrong[k] == 0 or int(k) in skip:
            continue
        contour = max(measure.find_contours(ref[:, :, k].astype(float), 0.5), key=len)
        if len(contour) < 6:
            continue
        pts = [[float(x), float(y), float(k)] for x, y in contour[::2]]
        return {
            "kind": "lasso",
            "points": pts,
            "positive": True,
            "voxel": (int(pts[0][0]), int(pts[0][1]), int(k)),
            "region": region,
        }
    return None


def _imbalance(pred: np.ndarray, ref: np.ndarray) -> int:
    extra, miss = int((pred & ~ref).sum()), int((ref & ~pred).sum())
    return -1 if extra > 2 * miss else (1 if miss > 2 * extra else 0)


def simulate(
    editor: TumourEditor,
    ref: np.ndarray,
    steps: int,
    use_boundary: bool,
    regions: tuple[str, ...] = ("WT", "TC", "ET"),
    tool: str = "strokes",
) -> list[dict[str, Any]]:
    """Run the simulated user; one row per interaction: kind, region, Dice per region, seconds.

    Each interaction goes to the region (of `regions`) with the most wrong voxels; a region
    whose outline is off mostly one way (twice as many extras as misses, or the reverse) first
    gets boundary steps (from the automatic result), repeated while its Dice rises.
    """
    rows: list[dict[str, Any]] = [{"kind": "start", **scores(editor.labels, ref), "seconds": 0.0}]
    avoid: dict[str, list[tuple[int, int, int]]] = {r: [] for r in regions}
    # None: not judged yet
    boundary: dict[str, int | None] = dict.fromkeys(regions, None if use_boundary else 0)

    def run(kind: str, call: Any, region: str) -> None:
        t0 = time.perf_counter()
        call()
        rows.append(
            {
                "kind": kind,
                "region": region,
                **scores(editor.labels, ref),
                "seconds": time.perf_counter() - t0,
            }
        )

    while len(rows) <= steps:
        errors = {r: int((_region(editor.labels, r) ^ _region(ref, r)).sum()) for r in regions}
        region = max(regions, key=lambda r: errors[r])
        if not errors[region]:
            break
        before = rows[-1][region]
        if (
            boundary[region] is None and _region(editor.labels, region).any()
        ):  # judged once there is an outline
            boundary[region] = _imbalance(_region(editor.labels, region), _region(ref, region))
        if boundary[region]:
            run(
                f"boundary {region} {boundary[region]:+d}",
                lambda r=region: editor.boundary(r, boundary[r]),
                region,
            )
            if rows[-1][region] <= before:
                boundary[region] = 0
                if len(rows) <= steps:
                    run("undo", editor.undo, region)
            continue
        act = next_action(
            _region(editor.labels, region), _region(ref, region), editor.spacing, region, avoid[region], tool
        )
        if act is None:
            break
        name = f"{act['kind']} {region} {'+' if act['positive'] else '-'}"
        try:
            if act["kind"] == "click":
                run(name, lambda a=act: editor.click(a["voxel"], a["positive"]), region)
            elif act["kind"] == "lasso":
                run(name, lambda a=act, r=region: editor.lasso(a["points"], region=r, axis=2), region)
            else:
                run(
                    name,
                    lambda a=act, r=region: editor.scribble(
                        a["points"], a["positive"], region=r, radius_mm=0.5
                    ),
                    region,
                )
        except ValueError as exc:
            print("  skipped:", exc, flush=True)
            avoid[region].append(tuple(int(v) for v in act["voxel"]))
            continue
        if rows[-1][region] < before - WORSE and len(rows) <= steps:  # it looks worse: the user undoes it
            avoid[region].append(tuple(int(v) for v in act["voxel"]))
            run("undo", editor.undo, region)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--cache", default=None, help="folder for the automatic results (outside the repository)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--plot", default=None)
    ap.add_argument("--replot", default=None, help="only draw --plot from this JSON of an earlier run")
    ap.add_argument(
        "--threads", type=int, default=0, help="click model threads (0: the default, all cores but one)"
    )
    ap.add_argument(
        "--click-model", default="brats-tumor-click",
        help="click model: card id or card file (e.g. a copy of the card beside candidate weights)",
    )
    ap.add_argument(
        "--fold", nargs="+", action="append", metavar="CARD EXAM",
        help="a click-model card and the exams it never saw (repeatable; default: --click-model with "
        + " and ".join(CASES) + ")",
    )
    ap.add_argument(
        "--no-t1c", action="store_true",
        help="exams without T1c, T1 standing in (default: --click-model with the seven brats18_wt_case_K)",
    )
    args = ap.parse_args(argv)
    if args.replot:
        plot(json.loads(Path(args.replot).read_text()), Path(args.plot))
        return 0
    import torch

    torch.set_num_threads(max(1, args.threads or (os.cpu_count() or 2)))
    from napari_brain_dl.core.tasks.click_segment import ClickSegmenter

    report: dict[str, Any] = {"cases": {}, "threads": args.threads, "os_cpus": os.cpu_count()}
    folds = args.fold or [[args.click_model, *(WT_ONLY if args.no_t1c else CASES)]]
    report["no_t1c"] = bool(args.no_t1c)
    report["click_model"] = {name: card for card, *names in folds for name in names}
    timings: dict[str, list[float]] = {}
    for name, click_model in report["click_model"].items():
        vols, ref = load_case(Path(args.data), name, args.no_t1c)
        labels, prob = automatic(vols, name, Path(args.cache) if args.cache else None, click_model)
        t1c_input = "T1" if args.no_t1c else "T1c"
        second = vols[2] if args.no_t1c else vols[1]
        seg = ClickSegmenter(vols[0], second, model=click_model, device="cpu", threads=args.threads or None)
        report["cases"][name] = {}
        protocols = (
            ("automatic", ("WT",), "strokes"),
            ("nothing", ("WT",), "strokes"),
            ("automatic", ("WT", "TC", "ET"), "lasso"),
            ("nothing", ("WT",), "lasso"),
        )
        for start, regions, tool in protocols[:2] if args.no_t1c else protocols:
            if start == "automatic":
                ed = TumourEditor(vols[0], second, labels=labels, probabilities=prob, segmenter=seg,
                                  t1c_input=t1c_input)
            else:
                ed = TumourEditor(vols[0], second, segmenter=seg, t1c_input=t1c_input)
            rows = simulate(
                ed, ref, args.steps, use_boundary=start == "automatic", regions=regions, tool=tool
            )
            key = f"from {start}, {'clicks+scribbles' if tool == 'strokes' else 'lassos'}"
            report["cases"][name][key] = rows
            for r in rows[1:]:
                timings.setdefault(r["kind"].split()[0], []).append(r["seconds"])
            for region in ("WT", "TC", "ET"):
                print(
                    f"{name:22s} {key:34s} {region}: " + " ".join(f"{r[region]:.3f}" for r in rows),
                    flush=True,
                )
            print(f"{'':22s} {'':34s} steps: " + ", ".join(r["kind"] for r in rows[1:]), flush=True)
    report["seconds"] = {
        k: {
            "n": len(v),
            "median": round(statistics.median(v), 3),
            "p95": round(float(np.percentile(v, 95)), 3),
            "max": round(max(v), 3),
        }
        for k, v in timings.items()
    }
    for k, v in report["seconds"].items():
        print(
            f"seconds per {k:9s}: median {v['median']:.3f}  p95 {v['p95']:.3f}  "
            f"max {v['max']:.3f}  (n={v['n']})"
        )
    summary(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    if args.plot:
        plot(report, Path(args.plot))
    return 0


def summary(report: dict[str, Any]) -> None:
    """Whole-tumour Dice after 0 / 3 / 6 / 10 interactions per exam and user, and their means."""
    table: dict[str, list[list[float]]] = {}
    for name, starts in report["cases"].items():
        for key, rows in starts.items():
            wt = [rows[min(k, len(rows) - 1)]["WT"] for k in (0, 3, 6, 10)]
            table.setdefault(key, []).append(wt)
            print(f"{name:22s} {key:34s} WT after 0/3/6/10: " + " / ".join(f"{v:.3f}" for v in wt))
    for key, rows in table.items():
        mean = np.mean(rows, axis=0)
        print(f"{'mean of ' + str(len(rows)):22s} {key:34s} WT after 0/3/6/10: "
              + " / ".join(f"{v:.3f}" for v in mean))


def plot(report: dict[str, Any], path: Path) -> None:
    """Dice against interactions: whole tumour from the automatic result and from nothing, then
    core and enhancing tumour (from the automatic result only: from nothing there are none).

    A colour per exam, a line style per simulated user.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    cycle = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown")
    colours = {name: cycle[i % len(cycle)] for i, name in enumerate(report["cases"])}
    users = {"clicks+scribbles": ("-", "s"), "lassos": (":", "o")}
    panels = (  # (region, start, title, y range)
        ("WT", "automatic", "whole tumour, from the automatic result", (0.85, 0.96)),
        ("WT", "nothing", "whole tumour, from nothing", (0.0, 1.0)),
        ("TC", "automatic", "tumour core, from the automatic result", (0.55, 0.95)),
        ("ET", "automatic", "enhancing tumour, from the automatic result", (0.55, 0.95)),
    )
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.6))
    for ax, (region, start, title, ylim) in zip(axes, panels, strict=True):
        for name, protocols in report["cases"].items():
            for key, rows in protocols.items():
                if f"from {start}," not in key:
                    continue
                ls, marker = users[key.split(", ")[1]]
                ax.plot(range(len(rows)), [r[region] for r in rows], color=colours[name], ms=3.5, ls=ls,
                        marker=marker, alpha=0.85)
        if region == "WT":
            for target in (0.90, 0.93):
                ax.axhline(target, color="grey", lw=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("interactions")
        ax.set_ylim(*ylim)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Dice vs expert")
    short = {n: n.replace("brats_2013_", "").replace("brats18_", "").removesuffix("_1") for n in colours}
    handles = [Line2D([], [], color=c, lw=2, label=short[n]) for n, c in colours.items()]
    handles += [Line2D([], [], color="k", ls=ls, marker=m, ms=4, label=u) for u, (ls, m) in users.items()]
    axes[1].legend(handles=handles, fontsize=8, loc="lower right", handlelength=3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    raise SystemExit(main())
