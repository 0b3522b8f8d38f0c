"""Super-resolution of thick-slice MRI to an isotropic grid covering the same field of view.

Methods:

- ``"self-supervised"`` (default, SMORE-like): the in-plane slices have high resolution. They
  are degraded along one in-plane axis with the acquisition's slice profile (a box of the slice
  thickness, slices one slice spacing apart) and B-spline-upsampled back; a per-scan model
  (`..models.srnet`: adaptive filters fitted in closed form, then a small residual 2D CNN
  trained for `SRSettings.steps` steps) learns to undo that, for both in-plane
  axes. At inference the scan is B-spline-upsampled through-plane (at the in-plane spacing) and
  the model runs on the slices that contain the through-plane axis in both orientations; the
  two results are averaged, then resampled to the output grid when it differs. Beyond the first
  and last acquired slices the scan is continued by mirrored slices (in training and at
  inference) so the filters never meet a flat extrapolation; a magnitude image (no negative
  voxel) stays non-negative. Self-check (`.sr_check`): one acquired slice in six is held out of
  the training; the learnt part is scored against B-spline on them (PSNR inside the
  foreground), the CNN keeps its best-scoring weights, and the result is
  ``B-spline + w (learnt - B-spline)`` with the weight ``w`` in [0, 1] best on those slices
  (0: plain B-spline), so the held-out score is never below B-spline. The result's notes say
  what the check found in one sentence; ``provenance["self_check"]`` records it. Deterministic
  given `seed`; no time-based stopping, so the work is the same on every run.
- ``"bspline"``: cubic B-spline interpolation (SimpleITK), the baseline.
- a model card (id or path) of task ``super_resolution``: B-spline upsampling to the target
  grid, then the card's network on that grid through `..inference.predict`.

Geometry: the through-plane axis is the axis with the largest spacing. The output grid is
isotropic at `spacing` (default: the finest in-plane spacing), keeps the input's direction
cosines exactly, and covers the same field of view: along each axis the outer voxel edges
coincide, up to less than one output voxel (centred) when the extent is not a multiple of
`spacing`. The slice thickness is ``meta["slice_thickness"]`` (DICOM) when known, else equal
to the slice spacing (no gap).
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ... import __version__
from .. import progress as _progress
from ..progress import CancelToken, ProgressCallback, check
from ..volume import Volume
from .slice_profile import bspline_resample_index, slice_thickness
from .sr_self_supervised import Grid, scaled_grid

METHODS = ("self-supervised", "bspline")
#: Spacings within this relative difference count as isotropic.
ISOTROPIC_TOLERANCE = 0.05
MIN_SPACING_MM = 0.1
MAX_OUTPUT_VOXELS = 400_000_000


class NothingToDo(ValueError):
    """The scan is already isotropic: there is nothing to super-resolve (an info, not an error)."""


@dataclass
class SuperResolution:
    """An isotropic super-resolved image and how it was made.

    Attributes:
        image: The result (float32) on the isotropic grid covering the input's field of view.
        method: "self-supervised", "bspline", or the model card id.
        provenance: Method, grids in and out, slice profile, settings, seed, device, seconds.
        notes: Plain sentences for the user (assumptions, e.g. a slice thickness taken as spacing).
    """

    image: Volume
    method: str
    provenance: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)



def through_plane_axis(volume: Volume) -> int:
    """Index of the voxel axis with the largest spacing (first one on ties)."""
    return int(np.argmax(np.round(volume.spacing, 6)))


def isotropic_grid(volume: Volume, spacing: float) -> Grid:
    """(shape, affine) of the isotropic grid at `spacing` covering `volume`'s field of view.

    Example:
        >>> v = Volume(np.zeros((10, 10, 4), np.float32), np.diag([1.0, 1.0, 2.5, 1.0]))
        >>> shape, affine = isotropic_grid(v, 1.0)
        >>> shape, round(float(affine[2, 2]), 6), round(float(affine[2, 3]), 6)
        ((10, 10, 10), 1.0, -0.75)
    """
    return scaled_grid(volume, [spacing / s for s in volume.spacing])


def bspline_upsample(volume: Volume, shape: tuple[int, int, int], affine: np.ndarray,
                     name: str | None = None) -> Volume:
    """Cubic B-spline (SimpleITK) resampling of `volume` onto a grid with the same axes.

    Raises:
        ValueError: The target grid's axes are not the input's axes (scaled and shifted only).

    Example:
        >>> v = Volume(np.random.rand(8, 8, 4).astype(np.float32), np.diag([1.0, 1.0, 2.0, 1.0]))
        >>> bspline_upsample(v, *isotropic_grid(v, 1.0)).shape
        (8, 8, 8)
    """
    index = np.linalg.inv(volume.affine) @ np.asarray(affine, np.float64)
    steps = np.diag(index)[:3]
    off = index[:3, :3] - np.diag(steps)
    if np.abs(off).max() > 1e-6 * max(1.0, np.abs(steps).max()) or (steps <= 0).any():
        raise ValueError("The target grid must keep the input's axes (only the spacing may change).")
    data = bspline_resample_index(volume.data, index[:3, 3], steps, shape)
    return Volume(data, np.asarray(affine, np.float64), name=name or volume.name, meta=dict(volume.meta))


def simulate_thick_slices(volume: Volume, factor: int = 4, axis: int | None = None) -> Volume:
    """Thick slices from a thin-slice scan: mean of `factor` consecutive slices, every `factor`-th.

    The returned grid is exact: thick slice k is centred on the middle of its group, its spacing
    is `factor` times the original, and ``meta["slice_thickness"]`` says the same (no gap).
    Trailing slices that do not fill a group are dropped.

    Args:
        volume: A (near-)isotropic scan.
        factor: Slices per group (integer >= 2).
        axis: Voxel axis to thicken; default the one pointing most superior (axial slices).

    Example:
        >>> v = Volume(np.arange(16.0).reshape(1, 1, 16).repeat(2, 0).repeat(2, 1), np.eye(4))
        >>> t = simulate_thick_slices(v, 4)
        >>> t.shape, t.data[0, 0].tolist(), float(t.affine[2, 3])
        ((2, 2, 4), [1.5, 5.5, 9.5, 13.5], 1.5)
    """
    if int(factor) != factor or factor < 2:
        raise ValueError(f"The thick-slice factor must be an integer of at least 2, got {factor}.")
    factor = int(factor)
    if axis is None:
        directions = volume.affine[:3, :3] / np.asarray(volume.spacing)
        axis = int(np.argmax(np.abs(directions[2])))
    groups = volume.shape[axis] // factor
    if groups < 2:
        raise ValueError(f"{volume.name} has {volume.shape[axis]} slices along axis {axis}; "
                         f"at least {2 * factor} are needed for {factor}x thick slices.")
    data = np.moveaxis(np.asarray(volume.data, np.float32), axis, 0)[: groups * factor]
    thick = data.reshape(groups, factor, *data.shape[1:]).mean(axis=1, dtype=np.float64)
    index = np.eye(4)
    index[axis, axis] = factor
    index[axis, 3] = (factor - 1) / 2
    meta = {k: v for k, v in volume.meta.items() if k not in ("path", "derived")}
    meta["slice_thickness"] = float(factor * volume.spacing[axis])
    return Volume(np.moveaxis(thick.astype(np.float32), 0, axis), volume.affine @ index,
                  name=f"{volume.name} (thick x{factor})", meta=meta)


def super_resolve(
    volume: Volume,
    *,
    method: str = "self-supervised",
    spacing: float | None = None,
    device: str = "auto",
    seed: int = 0,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    settings: Any = None,
) -> SuperResolution:
    """Super-resolve a thick-slice scan to an isotropic grid covering the same field of view.

    Args:
        volume: A 3D scan with one axis coarser than the other two.
        method: "self-supervised", "bspline", or a super_resolution model card (id or path).
        spacing: Output voxel size in mm (default: the finest in-plane spacing).
        device: auto | cpu | cuda | mps (training and inference of the network).
        seed: Seed of the self-supervised training (same seed, same result).
        progress: ``progress(done, total, text)`` callback.
        cancel: Token polled between training steps and inference batches.
        settings: `..models.srnet.SRSettings` overriding the self-supervised defaults
            (e.g. CNN training steps); None keeps the documented defaults.

    Raises:
        NothingToDo: The scan is already isotropic (nothing is computed).
        ValueError: A 2D image, an absurd `spacing`, or an unknown method / wrong card task.
        Cancelled: `cancel` was set.

    Example:
        >>> pd = load("niivue_chris/chris_PD.nii.gz")  # doctest: +SKIP
        >>> sr = super_resolve(pd)  # doctest: +SKIP
        >>> sr.image.spacing, sr.image.name  # doctest: +SKIP
        ((0.858, 0.858, 0.858), 'chris_PD (super-resolved)')
    """
    start = time.perf_counter()
    report = progress or _progress.no_progress
    target = _check_request(volume, spacing)
    grid = isotropic_grid(volume, target)
    z = through_plane_axis(volume)
    notes: list[str] = []
    thickness = slice_thickness(volume.meta, volume.spacing[z])
    if "slice_thickness" not in volume.meta:
        notes.append(f"The slice thickness is not recorded; it is taken equal to the slice spacing "
                     f"({volume.spacing[z]:.2f} mm, no gap).")
    prov: dict[str, Any] = {
        "method": method, "seed": seed, "through_plane_axis": z,
        "slice_thickness_mm": round(thickness, 4),
        "slice_gap_mm": round(volume.spacing[z] - thickness, 4),
        "input_grid": _grid_info(volume.shape, volume.affine),
        "output_grid": _grid_info(*grid),
    }
    check(cancel)
    if method == "bspline":
        report(0, 1, "B-spline interpolation")
        data = bspline_upsample(volume, *grid).data
        label = "bspline"
    elif method == "self-supervised":
        data, extra, sentence = _self_supervised(volume, grid, z=z, thickness=thickness, device=device,
                                                 seed=seed, settings=settings, report=report, cancel=cancel)
        prov.update(extra)
        notes.append(sentence)
        label = "self-supervised"
    else:
        data, extra = _with_card(volume, grid, method, device, progress, cancel)
        prov.update(extra)
        label = str(extra["model_id"])
    check(cancel)
    prov.update(seconds=round(time.perf_counter() - start, 2), method=label, **_stamp())
    image = _result_volume(volume, data, grid, label, target)
    report(1, 1, "done")
    return SuperResolution(image, label, prov, notes)


def _check_request(volume: Volume, spacing: float | None) -> float:
    """Validate the input and the requested spacing; return the output spacing (mm)."""
    if min(volume.shape) < 2:
        raise ValueError(f"{volume.name} is a 2D image {volume.shape}; super-resolution needs a 3D volume.")
    sp = volume.spacing
    z = through_plane_axis(volume)
    in_plane = [s for a, s in enumerate(sp) if a != z]
    if sp[z] <= min(sp) * (1 + ISOTROPIC_TOLERANCE):
        raise NothingToDo(f"{volume.name} is already isotropic ({' x '.join(f'{s:.2f}' for s in sp)} mm); "
                          "there is nothing to super-resolve.")
    if spacing is None:
        return float(min(in_plane))
    if not isinstance(spacing, (int, float)) or not math.isfinite(spacing) or spacing <= 0:
        raise ValueError(f"The output spacing must be a positive number of mm, got {spacing!r}.")
    if spacing < MIN_SPACING_MM:
        raise ValueError(f"An output spacing of {spacing:g} mm is below {MIN_SPACING_MM} mm, finer than any "
                         "MRI can support; choose about the in-plane spacing "
                         f"({min(in_plane):.2f} mm).")
    if spacing >= sp[z] * (1 - ISOTROPIC_TOLERANCE):
        raise ValueError(f"An output spacing of {spacing:g} mm is not finer than the slice spacing "
                         f"({sp[z]:.2f} mm), so it would not super-resolve anything.")
    voxels = np.prod([n * s / spacing for n, s in zip(volume.shape, sp, strict=True)])
    if voxels > MAX_OUTPUT_VOXELS:
        raise ValueError(f"An output spacing of {spacing:g} mm would make {voxels / 1e6:.0f} million voxels, "
                         f"too many; choose about the in-plane spacing ({min(in_plane):.2f} mm).")
    return float(spacing)


def _self_supervised(volume: Volume, grid: Grid, *, z: int, thickness: float, device: str, seed: int,
                     settings: Any, report: ProgressCallback, cancel: CancelToken | None,
                     ) -> tuple[np.ndarray, dict[str, Any], str]:
    """The learnt result blended with B-spline by the self-check's weight (`.sr_self_supervised`)."""
    data = np.asarray(volume.data)
    finite = bool(np.isfinite(data).any())
    lowest = np.nanmin(data) if finite else np.nan  # also decides the clip of the learnt part
    if not finite or lowest == np.nanmax(data):  # nothing to learn from
        raise ValueError(f"{volume.name} is empty: every voxel has the same value, so there is nothing "
                         "to super-resolve.")
    from .sr_self_supervised import self_supervised

    learnt, checked, prov = self_supervised(volume, z=z, thickness=thickness, device=device, seed=seed,
                                            settings=settings, report=report, cancel=cancel)
    base = bspline_upsample(volume, *grid).data
    if learnt is not None:
        if not (learnt.shape == tuple(grid[0]) and np.allclose(learnt.affine, grid[1], atol=1e-6)):
            learnt = bspline_upsample(learnt, *grid)
        sr = learnt.data
        if lowest >= 0:  # magnitude images: undershoot below zero is ringing, not signal
            np.maximum(sr, 0, out=sr)
        base = sr if checked.weight >= 1 else base + np.float32(checked.weight) * (sr - base)
    prov["self_check"] = checked.as_dict()
    return base, prov, checked.sentence()


def _with_card(volume: Volume, grid: Grid, spec: str, device: str, progress: ProgressCallback | None,
               cancel: CancelToken | None) -> tuple[np.ndarray, dict[str, Any]]:
    """B-spline to the target grid, then the card's network on that grid."""

    from ..inference import predict
    from ..models.registry import list_models, resolve_model

    if not Path(spec).exists() and spec not in {c.id for c in list_models()}:
        raise ValueError(f"Unknown super-resolution method {spec!r}: choose {', '.join(METHODS)}, "
                         "or a super_resolution model card (id or path).")
    card = resolve_model(spec)
    if card.task != "super_resolution":
        raise ValueError(f"Model {card.id!r} is a {card.task} model, not a super_resolution model.")
    up = bspline_upsample(volume, *grid)
    check(cancel)
    pred = predict(card, up, device=device, progress=progress, cancel=cancel)
    model_prov = {k: v for k, v in pred.provenance.items() if k not in ("seconds",)}
    return np.asarray(pred.primary.data, np.float32), {"model_id": card.id, "model": model_prov}


def _result_volume(volume: Volume, data: np.ndarray, grid: Grid, label: str, spacing: float) -> Volume:
    derived = (f"super-resolved ({label}) from {'x'.join(f'{s:.2f}' for s in volume.spacing)} mm "
               f"to {spacing:.2f} mm isotropic")
    meta = {k: v for k, v in volume.meta.items() if k not in ("slice_thickness", "path", "derived")}
    meta.update(derived=derived, description=f"super-resolved {label} {spacing:.2f} mm"[:79],
                source_path=volume.meta.get("path", ""))
    return Volume(np.asarray(data, np.float32), grid[1], name=f"{volume.name} (super-resolved)", meta=meta)


def _grid_info(shape: tuple[int, ...], affine: np.ndarray) -> dict[str, Any]:
    v = Volume(np.empty((1, 1, 1), np.uint8), affine)
    return {"shape": list(shape), "spacing": [round(s, 6) for s in v.spacing], "axcodes": v.axcodes,
            "affine": np.asarray(affine).tolist()}


def _stamp() -> dict[str, Any]:

    return {"version": __version__, "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}

