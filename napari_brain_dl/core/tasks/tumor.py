"""Automatic brain-tumour segmentation: FLAIR and / or T1c (T1, T2 when present) -> BraTS 2023 labels.

Labels: 1 necrotic / non-enhancing core, 2 edema, 3 enhancing; regions WT = 1+2+3,
TC = 1+3, ET = 3. The model's card normalises the intensities itself, so raw integer
scans and scans already z-scored inside the brain both work. A missing contrast is
given to the model as an all-zero channel (it was trained with contrasts dropped).
Without T1c (no contrast agent) only the whole tumour is given (label 2): tumour core
and enhancing tumour are left out and the provenance says why; T2 is then not used
(the model never saw T2 without T1c). The card's ``brats_regions`` step sets the
thresholds (chosen by cross-validation) and drops small components away from the tumour.

With FLAIR and T1c, the default model's whole tumour is then re-outlined by the click model
from one automatic click at the tumour's centre (`tumor_cascade`; ``click_refine``): on expert
exams neither model saw, its outline was closer to the expert's (bench/README.md). Without T1c,
T1 stands in for it there (measured on whole-tumour-only exams the click model never saw).

Test-time augmentation (flips) gives a voxel-wise uncertainty map: the spread of the
region probabilities between the flipped passes (0 = all passes agree).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..models import prepost
from ..progress import CancelToken, ProgressCallback, check
from ..volume import Volume
from .click_segment import click_t1c_input

CONTRASTS = ("FLAIR", "T1c", "T1", "T2")  # the models' input order
DEFAULT_MODEL = "brats-tumor-seg"  # FLAIR + T1c (T1, T2 optional)
DEFAULT_MODEL_WITHOUT_T1C = "brats-tumor-seg-no-t1c"  # any exam holding FLAIR or T1c
CLASS_NAMES = {1: "necrotic / non-enhancing core", 2: "edema", 3: "enhancing"}
NO_T1C = ("No T1c (contrast-enhanced T1): only the whole tumour is given (label 2); tumour core and "
          "enhancing tumour need T1c and are left out.")
NO_FLAIR = ("No FLAIR: the whole tumour (edema) is estimated from T1c alone and is less reliable; "
            "add FLAIR for a dependable outline.")
TTA_FLIPS: tuple[tuple[int, ...], ...] = ((), (0,), (1,), (2,))
UNCERTAIN = 0.2  # a voxel is "uncertain" when its spread between passes exceeds this


@dataclass
class TumorSegmentation:
    """Result of `segment_tumor`, every Volume on FLAIR's grid.

    Attributes:
        labels: uint8 labels 0-3 (BraTS 2023).
        uncertainty: float32 spread between test-time-augmented passes, or None without TTA.
        review_slices: Axial slices with the most uncertain tumour voxels, most first:
            ``{"axis": voxel axis, "index": slice index, "uncertain_voxels": n}``.
        provenance: Model, weights, inputs (missing / synthetic ones named), parameters.
        notes: Sentences for the user (resampled inputs, implausible results).
        probabilities: float16 (3, X, Y, Z) region probabilities TC, WT, ET (mean over the
            passes) behind `labels`, kept so an editor can move the outlines without a network
            pass (`tumor_edit.TumourEditor`); TC and ET are zeros without T1c.
    """

    labels: Volume
    uncertainty: Volume | None = None
    review_slices: list[dict[str, int]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    probabilities: np.ndarray | None = None


def segment_tumor(
    flair: Volume | None,
    t1c: Volume | None = None,
    t1: Volume | None = None,
    t2: Volume | None = None,
    *,
    model: str = DEFAULT_MODEL,
    device: str = "auto",
    tta: bool = False,
    click_refine: bool | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    notify: Callable[[str], None] | None = None,
) -> TumorSegmentation:
    """Segment a brain tumour; the labels land on FLAIR's grid (T1c's without FLAIR).

    Args:
        flair, t1c: At least one of them. Without T1c only the whole tumour is given.
        t1, t2: Optional contrasts (None when the exam lacks them; T2 is unused without T1c).
        model: Model id or card path with TC/WT/ET sigmoid outputs. The default
            (`DEFAULT_MODEL`) becomes `DEFAULT_MODEL_WITHOUT_T1C` when FLAIR or T1c is missing.
        device: auto | cpu | cuda | mps.
        tta: Run 4 flipped passes and return the uncertainty map and slices to review.
        click_refine: Re-outline the whole tumour with the click model (`tumor_cascade`); needs
            FLAIR and T1c, or FLAIR and T1 (standing in for T1c). None: with the default model only.

    Raises:
        ValueError: Neither FLAIR nor T1c is given, a scan is empty or does not look like a head,
            or the contrasts do not cover the same part of space.

    Example:
        >>> seg = segment_tumor(load("t2f.nii.gz"), load("t1c.nii.gz"), tta=True)  # doctest: +SKIP
        >>> seg.labels.same_grid(load("t2f.nii.gz")), seg.review_slices[0]["axis"]  # doctest: +SKIP
        (True, 2)
    """
    from ..inference import get_model, predict

    notes: list[str] = []
    vols, present = prepare_exam({"FLAIR": flair, "T1c": t1c, "T1": t1, "T2": t2}, notes)
    say = notify or (lambda s: None)
    for note in notes:
        say(note)
    loaded = get_model(_model_for(model, present), device)
    missing = [name for name in loaded.card.required_inputs if name not in present]
    if missing:
        raise ValueError(f"{loaded.card.id} needs {' and '.join(missing)}, which this exam lacks; "
                         f"{DEFAULT_MODEL_WITHOUT_T1C} works without them.")
    probabilities = replace(
        loaded,
        card=replace(loaded.card, postprocessing=[{"op": "sigmoid"}], output={"kind": "probabilities"}),
    )
    flips = TTA_FLIPS if tta else ((),)
    report = progress or (lambda d, t, s: None)
    passes = []
    span = [1]  # steps of one pass (the last step of all is the click model's)
    for i, axes in enumerate(flips):
        check(cancel)

        def step(done: int, total: int, text: str, i: int = i) -> None:
            span[0] = total
            report(i * total + done, len(flips) * total + 1, f"pass {i + 1}/{len(flips)}: {text}")

        flipped = [v.with_data(np.flip(v.data, axes) if axes else v.data) for v in vols]
        pred = predict(probabilities, flipped, device=device, progress=step, cancel=cancel, notify=notify)
        stack = np.stack([o.data for o in pred.outputs.values()])  # TC, WT, ET
        passes.append(np.flip(stack, tuple(a + 1 for a in axes)) if axes else stack)
    mean = np.mean(passes, axis=0)
    step = next((s for s in loaded.card.postprocessing if s.get("op") == "brats_regions"),
                {"threshold": 0.5, "enhancing": 3})
    labels = prepost.brats_labels(mean, step, t1c="T1c" in present)
    ref = vols[0] if "FLAIR" in present else vols[1]
    thresholds = prepost.region_thresholds(step.get("threshold", 0.5))
    if "T1c" not in present:
        thresholds = {"WT": float(step.get("wt_threshold_without_t1c", thresholds["WT"]))}
    kept = _kept_probabilities(mean, "T1c" in present)
    cascade: dict[str, Any] = {"applied": False, "reason": "not asked"}
    if click_refine is None:
        click_refine = model == DEFAULT_MODEL
    stand_in = click_t1c_input(present)  # T1c, else T1
    if click_refine and "FLAIR" in present and stand_in:
        from .tumor_cascade import refine_whole_tumour

        check(cancel)
        report(len(flips) * span[0], len(flips) * span[0] + 1, "whole tumour: click model")
        second = vols[CONTRASTS.index(stand_in)]
        labels, kept, cascade = refine_whole_tumour(labels, vols[0], second, kept, thresholds["WT"],
                                                    device=device, cancel=cancel)
        cascade["t1c_input"] = stand_in
        if "agreement" in cascade and not cascade["applied"]:
            notes.append(f"Whole tumour: {cascade['reason']}.")
            say(notes[-1])
    elif click_refine:
        cascade["reason"] = "needs FLAIR and T1c (or T1)"
    prov = {
        **pred.provenance,
        "inputs": {
            name: _source(v, name in present)
            for name, v in zip(CONTRASTS, vols, strict=True)
        },
        "missing_inputs": [n for n in CONTRASTS if n not in present],
        "regions_left_out": {} if "T1c" in present else {"TC": NO_T1C, "ET": NO_T1C},
        "thresholds": thresholds,
        "synthetic_inputs": [
            n for n, v in zip(CONTRASTS, vols, strict=True)
            if n in present and v.meta.get("synthetic")  # missing channels copy FLAIR's meta
        ],
        "tta_flips": [list(a) for a in flips],
        "whole_tumour_click_refine": cascade,
        "task": "tumor_segmentation",
    }
    _check_plausible(labels, ref, notes, notify)
    result = TumorSegmentation(
        labels=ref.with_data(labels, name=f"{ref.name}_tumor", provenance=prov, model_id=loaded.card.id),
        provenance=prov,
        notes=notes,
        probabilities=kept,
    )
    if tta:
        spread = np.std(passes, axis=0)[(slice(None) if "T1c" in present else slice(1, 2))]
        spread = spread.max(axis=0).astype(np.float32)
        result.uncertainty = ref.with_data(spread, name=f"{ref.name}_tumor_uncertainty", provenance=prov)
        result.review_slices = review_slices(spread, labels > 0, ref.affine)
    report(1, 1, "done")
    return result


def _kept_probabilities(mean: np.ndarray, t1c: bool) -> np.ndarray:
    """float16 TC / WT / ET probabilities; without T1c core and enhancing are left out (zeros)."""
    out = mean.astype(np.float16)
    if not t1c:
        out[[0, 2]] = 0
    return out


def _model_for(model: str, present: list[str]) -> str:
    """The default model, or its twin trained for exams that lack FLAIR or T1c."""
    if model == DEFAULT_MODEL and not {"FLAIR", "T1c"} <= set(present):
        return DEFAULT_MODEL_WITHOUT_T1C
    return model


def prepare_exam(
    contrasts: dict[str, Volume | None], notes: list[str], require: tuple[str, ...] = ()
) -> tuple[list[Volume], list[str]]:
    """Check the exam and put every contrast on FLAIR's grid (T1c's without FLAIR); missing ones become zeros.

    The exam needs FLAIR or T1c, and every name in `require`. Without T1c, T2 is set aside
    (the model was never trained on T2 without T1c) and `notes` says so.
    Returns the volumes in model order (FLAIR, T1c, T1, T2) and the names actually used.
    """
    from ..study import onto_reference

    if contrasts.get("FLAIR") is None and contrasts.get("T1c") is None:
        raise ValueError("Neither FLAIR nor T1c is given: tumour segmentation needs at least one of them.")
    for name in require:
        if contrasts.get(name) is None:
            raise ValueError(f"{name} is missing: this needs {' and '.join(require)}.")
    contrasts = dict(contrasts)
    if contrasts.get("T1c") is None:
        notes.append(NO_T1C)
        if contrasts.get("T2") is not None:
            notes.append("T2 is not used without T1c (the model was trained on FLAIR + T1 for that case).")
            contrasts["T2"] = None
    elif contrasts.get("FLAIR") is None:
        notes.append(NO_FLAIR)
    ref_name = "FLAIR" if contrasts.get("FLAIR") is not None else "T1c"
    ref = contrasts[ref_name]
    assert ref is not None
    out, present = [], []
    for name, vol in contrasts.items():
        if vol is None:
            out.append(ref.with_data(np.zeros(ref.shape, np.float32), name=f"{name} (missing)"))
            continue
        present.append(name)
        check_head_image(vol, name)
        if name == "FLAIR" and np.mean(np.asarray(vol.data) == np.nanmin(vol.data)) < 0.3:
            notes.append(
                "FLAIR does not look skull-stripped; the model was trained on skull-stripped scans: "
                "strip the skull first (Skull strip) for a reliable result."
            )
        out.append(onto_reference(vol, ref, name, ref_name, notes,
                                  hint="register them first (Load exam with 'register')."))
    return out, present


def check_head_image(vol: Volume, name: str) -> None:
    """Refuse an empty image or one whose content is not the size of a head (80-350 mm a side)."""
    data = np.asarray(vol.data)
    if not np.isfinite(data).any() or np.nanmax(data) == np.nanmin(data):
        raise ValueError(f"The {name} image ({vol.name}) is empty: every voxel has the same value.")
    fg = np.nan_to_num(data, nan=float(np.nanmin(data))) > np.nanmin(data)
    idx = [np.flatnonzero(fg.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
    extent = [(int(i[-1]) - int(i[0]) + 1) * s for i, s in zip(idx, vol.spacing, strict=True)]
    if min(extent) < 80 or max(extent) > 350:
        size = " x ".join(f"{e:.0f}" for e in extent)
        raise ValueError(
            f"The {name} image ({vol.name}) does not look like a brain MRI: its content spans {size} mm, "
            "while the model expects a whole head or brain (80-350 mm a side)."
        )


def review_slices(
    spread: np.ndarray, tumor: np.ndarray, affine: np.ndarray, top: int = 5
) -> list[dict[str, int]]:
    """Axial slices (the voxel axis closest to superior) with the most uncertain tumour voxels."""
    from scipy import ndimage

    axis = int(
        np.argmax(np.abs(np.asarray(affine)[2, :3]) / np.linalg.norm(np.asarray(affine)[:3, :3], axis=0))
    )
    near = ndimage.binary_dilation(tumor, iterations=2) if tumor.any() else tumor
    counts = ((spread > UNCERTAIN) & near).sum(axis=tuple(a for a in range(3) if a != axis))
    order = [int(i) for i in np.argsort(counts)[::-1][:top] if counts[i] > 0]
    return [{"axis": axis, "index": i, "uncertain_voxels": int(counts[i])} for i in order]


def _check_plausible(
    labels: np.ndarray, ref: Volume, notes: list[str], notify: Callable[[str], None] | None
) -> None:
    data = np.asarray(ref.data)
    head = data > np.nanmin(data)
    if head.any() and (labels > 0).sum() > 0.4 * head.sum():
        note = (
            "The tumour covers more than 40 % of the head: the result is implausible; "
            "check that the image is a skull-stripped brain MRI of the expected contrasts."
        )
        notes.append(note)
        if notify:
            notify(note)


def _source(vol: Volume, present: bool) -> str | None:
    return str(vol.meta.get("path", vol.name)) if present else None
