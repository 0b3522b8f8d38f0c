"""Super-resolution bench: thick-slice protocol on real 1 mm scans, SR vs B-spline.

Protocol: take a thin-slice scan, simulate thick slices (mean of 4 consecutive slices, every
4th kept: `simulate_thick_slices`), super-resolve back to the original spacing, and compare to
the original with `image_scores(match=False)` inside two masks of the original: the brain (the
issue's region: MindGrab skull stripping of the original 1 mm scan, or the foreground of a
skull-stripped scan) and the whole head (above 10 % of its 99th percentile, holes filled,
largest component).

    python bench/bench_superres.py                      # 4 scans, axial, + chris_PD
    python bench/bench_superres.py --scans t1n tcga_du_7294_t1 --threads 1 --skip-pd

Columns: B-spline and SR (after the self-check's blend) PSNR / SSIM / MAE, the gain, the gain of
the learnt part alone (before the blend), the self-check (held-out gain / blend weight / CNN
steps kept) and seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_brain_dl.core import io
from napari_brain_dl.core.image_metrics import image_scores
from napari_brain_dl.core.tasks.super_resolve import simulate_thick_slices, super_resolve
from napari_brain_dl.core.volume import Volume

DATA = Path(
    os.environ.get("NAPARI_BRAIN_DL_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
BRATS_MORE = ("brats18_tcia05_396_1", "brats20_training_001", "tcga_du_7294", "tcga_fg_6692")
SCANS = {
    "t1n": "brats_gli_00001/t1n.nii.gz",
    "t2w": "brats_gli_00001/t2w.nii.gz",
    "t1_crop": "brainchop_models/t1_crop.nii.gz",
    "chris_t1": "niivue_chris/chris_t1.nii.gz",
    "spm152": "niivue_templates/spm152.nii.gz",
    **{f"{exam}_{c}": f"brats_more/{exam}/{c}.nii.gz" for exam in BRATS_MORE for c in ("t1", "t2")},
}
#: Skull-stripped scans: their foreground is the brain.
SKULL_STRIPPED = {"t1n", "t2w", *(name for name in SCANS if name.startswith(BRATS_MORE))}


def foreground_mask(data: np.ndarray) -> np.ndarray:
    """Head (or brain, when skull-stripped) foreground: threshold, holes filled, largest part."""
    fg = data > 0.1 * np.percentile(data, 99)
    fg = ndimage.binary_closing(fg, iterations=2)
    labels, count = ndimage.label(fg)
    if count > 1:
        sizes = ndimage.sum(fg, labels, range(1, count + 1))
        fg = labels == (int(np.argmax(sizes)) + 1)
    return ndimage.binary_fill_holes(fg)


def brain_mask(volume: Volume, skull_stripped: bool) -> np.ndarray | None:
    """The brain of the original scan: its foreground when skull-stripped, else MindGrab's mask.

    None when the MindGrab weights (third-party, ../shared/data) are not there.
    """
    if skull_stripped:
        return foreground_mask(np.asarray(volume.data, np.float32))
    weights = DATA / "brainchop_models" / "mindgrab" / "model.pth"
    if not weights.exists():
        return None
    from napari_brain_dl.core.tasks.skullstrip import skullstrip

    return np.asarray(skullstrip(volume, model=weights, device="cpu").data) > 0


def superior_axis(volume: Volume) -> int:
    """Voxel axis pointing most superior (the axial slice axis)."""
    directions = volume.affine[:3, :3] / np.asarray(volume.spacing)
    return int(np.argmax(np.abs(directions[2])))


def protocol(volume: Volume, axis: int, factor: int = 4, settings: object = None,
             brain: np.ndarray | None = None) -> dict[str, object]:
    """Thick slices along `axis`, then B-spline and self-supervised SR; scores against the original.

    Scores inside the head foreground, and inside `brain` (a mask on the original grid) when given.
    Also scores the learnt part before the self-check's blend with B-spline ("learnt"), rebuilt
    from the blend weight, and records the self-check.
    """
    thick = simulate_thick_slices(volume, factor, axis)
    spacing = float(volume.spacing[axis])
    keep = [slice(None)] * 3
    keep[axis] = slice(0, thick.shape[axis] * factor)
    real = np.asarray(volume.data, np.float32)[tuple(keep)]
    masks = {"head": foreground_mask(real)}
    if brain is not None:
        masks["brain"] = brain[tuple(keep)]
    row: dict[str, object] = {"axis": axis, "thick_grid": list(thick.shape)}
    for method in ("bspline", "self-supervised"):
        start = time.perf_counter()
        sr = super_resolve(thick, method=method, spacing=spacing, device="cpu", settings=settings)
        seconds = time.perf_counter() - start
        ref_affine = volume.affine
        if sr.image.shape != real.shape or not np.allclose(sr.image.affine, ref_affine, atol=1e-4):
            raise AssertionError(f"{method}: output grid {sr.image.shape} is not the original {real.shape}")
        for region, mask in masks.items():
            row[f"{method} {region}"] = image_scores(sr.image.data, real, mask, match=False).as_dict()
        row[f"{method} seconds"] = round(seconds, 1)
        if method == "bspline":
            base = sr.image.data
        else:
            check = sr.provenance["self_check"]
            row["self_check"] = {k: v for k, v in check.items() if k != "sentence"}
            if check["weight"] > 0:  # the learnt part alone: B + (blend - B) / w
                learnt = base + (sr.image.data - base) / np.float32(check["weight"])
                for region, mask in masks.items():
                    row[f"learnt {region}"] = image_scores(learnt, real, mask, match=False).as_dict()
    for region in masks:
        gain = row[f"self-supervised {region}"]["psnr"] - row[f"bspline {region}"]["psnr"]  # type: ignore[index]
        row[f"gain_db {region}"] = round(gain, 2)
        if f"learnt {region}" in row:
            gain = row[f"learnt {region}"]["psnr"] - row[f"bspline {region}"]["psnr"]  # type: ignore[index]
            row[f"learnt_gain_db {region}"] = round(gain, 2)
    return row


def _setting(text: str) -> bool | int | float:
    """A --set value: true / false, a float (1e-5, 0.5) or an int."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return float(text) if any(c in text for c in ".eE") else int(text)


def main() -> None:
    """Run the protocol on the chosen scans and print a Markdown table (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", nargs="+", default=["t1n", "t1_crop", "chris_t1", "spm152"],
                        choices=SCANS, help="scans (default: the four of the original bench)")
    parser.add_argument("--axes", nargs="+", default=["axial"], choices=["axial", "other"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--steps", type=int, default=0, help="training steps (0: the method's default)")
    parser.add_argument("--set", nargs="*", default=[], help="SRSettings fields, NAME=VALUE")
    parser.add_argument("--skip-pd", action="store_true", help="skip the chris_PD wall-time run")
    parser.add_argument("--json", help="also write the rows as JSON here")
    args = parser.parse_args()

    import torch

    from napari_brain_dl.core.models.srnet import SRSettings

    if args.threads:
        torch.set_num_threads(args.threads)
    fields = {k: _setting(v) for k, v in (kv.split("=") for kv in args.set)}
    if args.steps:
        fields["steps"] = args.steps
    settings = SRSettings(**fields) if fields else None
    print(f"torch threads: {torch.get_num_threads()}, settings: {settings or SRSettings()}")
    rows = []
    for name in args.scans:
        volume = io.load(DATA / SCANS[name])
        up = superior_axis(volume)
        brain = brain_mask(volume, name in SKULL_STRIPPED)
        for which in args.axes:
            axis = up if which == "axial" else (up + 1) % 3
            row = {"scan": name, "which": which,
                   **protocol(volume, axis, settings=settings, brain=brain)}
            rows.append(row)
            for region in ("brain", "head"):
                if f"gain_db {region}" not in row:
                    continue
                b, s = row[f"bspline {region}"], row[f"self-supervised {region}"]
                check, learnt = row["self_check"], row.get(f"learnt_gain_db {region}", float("nan"))
                print(f"| {name} ({which}, axis {axis}; {region}) | {b['psnr']:.2f} / {b['ssim']:.4f} / "
                      f"{b['mae']:.4f} | {s['psnr']:.2f} / {s['ssim']:.4f} / {s['mae']:.4f} | "
                      f"{row[f'gain_db {region}']:+.2f} | {learnt:+.2f} | "
                      f"{check['gain_db']:+.2f} / {check['weight']:.2f} / {check['cnn_steps']} | "
                      f"{row['bspline seconds']:.1f} / {row['self-supervised seconds']:.1f} |", flush=True)
    if not args.skip_pd:
        pd = io.load(DATA / "niivue_chris" / "chris_PD.nii.gz")
        start = time.perf_counter()
        sr = super_resolve(pd, device="cpu", settings=settings)
        seconds = time.perf_counter() - start
        rows.append({"scan": "chris_PD", "seconds": round(seconds, 1), "grid": list(sr.image.shape),
                     "training_seconds": sr.provenance.get("training_seconds")})
        print(f"chris_PD self-supervised: {seconds:.1f} s end to end "
              f"(training {sr.provenance.get('training_seconds')} s), output {sr.image.shape}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
