"""Synthesis of a missing MR contrast (T1, T2 or FLAIR) from whichever other contrasts an exam has.

Two methods:
- the own model ``synth-mri`` (card task ``synthesis``, ``output.targets``): one 3D U-Net that takes
  any subset of T1, T1c, T2 and FLAIR (`core.models.synthnet`), trained with random input subsets
  by ``scripts/train_synthesis.py``; its former ids ``synth-flair-from-t1c`` and ``synth-t2-from-t1``
  resolve to it (card ``aliases``);
- ``histogram``: no training; one source's in-brain quantiles are mapped onto a reference
  intensity distribution of the target (101 quantiles stored in the model's card). A baseline only.

Intensity handling: every source is z-scored inside its own foreground first, so raw integers,
z-scored and float scans of one exam give the same synthetic image. The output scale is documented
in `OUTPUT_UNITS`. T1c is never synthesised (contrast uptake cannot be inferred).

Every result is marked synthetic (`napari_brain_dl.core.synthetic.mark_synthetic`): its name,
metadata and every file written from it say so. It can never pass for an acquired scan.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ... import __version__
from ..models.prepost import QUANTILES, brain_quantiles, match_quantiles  # noqa: F401 (API)
from ..progress import CancelToken, ProgressCallback, check
from ..volume import Volume

CONTRASTS = ("T1", "T1c", "T2", "FLAIR")
TARGETS = ("T1", "T2", "FLAIR")
HISTOGRAM = "histogram"
OUTPUT_UNITS = ("z-score of the target contrast inside the brain (mean 0, sd 1 over brain voxels); "
                "outside the sources' foreground the lowest brain value")
TRAINING_AXCODES = ("L", "P", "S")
UNITS_STAMP = ", units: brain z-score"
# Histogram baseline: the source whose appearance is closest to the target comes first.
_HISTOGRAM_SOURCE = {"FLAIR": ("T2", "T1", "T1c"), "T2": ("FLAIR", "T1", "T1c"), "T1": ("T1c", "T2", "FLAIR")}


@dataclass
class Synthesis:
    """Result of `synthesize`.

    Attributes:
        image: The synthetic contrast on the first source's grid, marked synthetic.
        target: Contrast synthesised ("FLAIR", "T2", "T1").
        sources: Contrasts it was computed from, in the order given.
        method: Model id, or "histogram".
        provenance: Model, weights sha256, inputs, parameters, ``synthetic: True``.
        notes: Sentences for the user (resampled inputs, unused contrasts).
    """

    image: Volume
    target: str
    sources: list[str]
    method: str
    provenance: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ contrast names
def canonical(name: str) -> str:
    """ "flair" -> "FLAIR", "t1c" -> "T1c" (case-insensitive; T1ce / T1Gd / T2w / T1n accepted).

    Raises:
        ValueError: Not one of T1, T1c, T2, FLAIR.
    """
    key = str(name).strip().lower()
    aliases = {"t1": "T1", "t1n": "T1", "t1w": "T1", "t1c": "T1c", "t1ce": "T1c", "t1gd": "T1c",
               "t2": "T2", "t2w": "T2", "flair": "FLAIR", "t2f": "FLAIR"}
    if key not in aliases:
        raise ValueError(f"Unknown contrast {name!r}: use one of T1, T1c, T2, FLAIR.")
    return aliases[key]


def check_target(target: str) -> str:
    """The canonical target; T1c is refused in one sentence.

    Raises:
        ValueError: T1c (or an unknown contrast).
    """
    target = canonical(target)
    if target == "T1c":
        raise ValueError("T1c is never synthesised: contrast uptake cannot be inferred from other "
                         "scans, so only an acquired T1c can show it.")
    return target


# ------------------------------------------------------------------ histogram baseline (numpy)
# ------------------------------------------------------------------ models
def synthesis_cards(target: str | None = None) -> list[Any]:
    """Available synthesis model cards (task ``synthesis``), optionally only those making `target`."""
    from ..models.registry import list_models

    cards = [c for c in list_models() if c.task == "synthesis" and c.available]
    return [c for c in cards if target is None or canonical(target) in card_targets(c)]


def card_targets(card: Any) -> list[str]:
    """Contrasts a synthesis card can make (``output.targets``, or the older ``output.target``)."""
    values = card.output.get("targets") or ([card.output["target"]] if card.output.get("target") else [])
    out = []
    for value in values:
        try:
            out.append(canonical(value))
        except ValueError:
            continue
    return out


def synthesis_methods(present: Iterable[str], target: str) -> list[str]:
    """Methods that can synthesise `target` from the `present` contrasts, best first.

    Own models first (model ids), then ``"histogram"`` when a reference intensity distribution
    of `target` is known. Empty when `target` is already present, is T1c, or nothing is present.
    For the widget's drop-down.

    Example:
        >>> synthesis_methods(["T1c"], "FLAIR")  # doctest: +SKIP
        ['synth-mri', 'histogram']
    """
    have = {canonical(p) for p in present}
    target = canonical(target)
    if target in have or not have or target == "T1c":
        return []
    cards = synthesis_cards(target)
    methods = [c.id for c in cards]
    if any(_quantiles_of(c, target) for c in cards):
        methods.append(HISTOGRAM)
    return methods


def _quantiles_of(card: Any, target: str) -> list[float] | None:
    ref = card.output.get("reference_quantiles")
    if isinstance(ref, dict):
        ref = ref.get(target)
    return [float(q) for q in ref] if ref else None


def _reference(target: str) -> tuple[list[float], Any]:
    for card in synthesis_cards(target):
        quantiles = _quantiles_of(card, target)
        if quantiles:
            return quantiles, card
    raise ValueError(
        f"No reference intensity distribution of {target} is installed, so the histogram baseline "
        f"cannot synthesise {target}."
    )


# ------------------------------------------------------------------ the task
def synthesize(
    sources: Mapping[str, Volume | None],
    target: str,
    *,
    method: str = "auto",
    device: str = "auto",
    flips: bool | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> Synthesis:
    """Synthesise the missing contrast `target` from whichever `sources` are given; marked synthetic.

    The output lies on the grid of the first source given (its shape and affine exactly); other
    sources are put onto it (exact reordering, else linear) when they cover the same space. Each
    source is z-scored inside its own foreground first, so its original scale (raw integers,
    z-scored, float) does not matter. Output units: `OUTPUT_UNITS`; the units of an acquired scan
    are not recoverable.

    Args:
        sources: {"T1" | "T1c" | "T2" | "FLAIR" (any case): Volume or None}, first one = output grid.
        target: "T1", "T2" or "FLAIR"; must not be among the sources. T1c is refused.
        method: "auto" (the own model, else histogram), "histogram" (baseline: one source's quantiles
            mapped onto a reference distribution), or a model id / card path (former ids resolve).
        device: auto | cpu | cuda | mps.
        flips: Average with the left-right mirrored pass (None: as the card says).
        progress: ``progress(done, total, text)``.
        cancel: Token polled between steps.

    Raises:
        ValueError: T1c or an unknown target, target already present, no / 2D / empty source,
            sources covering different space, or an unknown method.
        Cancelled: `cancel` was set.

    Example:
        >>> syn = synthesize({"T1c": load("t1c.nii.gz"), "T1": load("t1.nii.gz")}, "FLAIR")  # doctest: +SKIP
        >>> syn.image.name, syn.image.meta["synthetic"], syn.method, syn.sources  # doctest: +SKIP
        ('FLAIR (synthetic)', True, 'synth-mri', ['T1c', 'T1'])
    """
    from ..synthetic import mark_synthetic

    report = progress or (lambda d, t, s: None)
    target = check_target(target)
    given = [(canonical(k), v) for k, v in sources.items() if v is not None]
    if not given:
        raise ValueError(f"No source contrast was given: synthesising {target} needs at least one scan.")
    names = [n for n, _ in given]
    if len(set(names)) != len(names):
        raise ValueError(f"A contrast was given twice ({', '.join(names)}).")
    if target in names:
        raise ValueError(
            f"{target} is already present in the exam: there is nothing to synthesise, use the acquired scan."
        )
    notes: list[str] = []
    vols = _on_first_grid(given, notes)
    check(cancel)
    report(0, 4, "choosing the method")
    chosen = _choose(method, target, names)
    if chosen == HISTOGRAM:
        quantiles, card = _reference(target)
        src = next(n for n in (*_HISTOGRAM_SOURCE[target], *names) if n in vols)
        report(1, 4, f"matching the {src} histogram onto {target}")
        data, fg = _histogram(vols[src], quantiles)
        prov: dict[str, Any] = {"model_id": None, "reference_from": card.id,
                                "weights_sha256": None, "card_path": str(card.card_path)}
        used = [src]
    else:
        data, fg, prov = _run_model(chosen, target, vols, names, device, flips, report, cancel)
        used = list(names)
        chosen = prov["model_id"]
    check(cancel)
    data = np.where(fg, data, data[fg].min() if fg.any() else 0.0).astype(np.float32)  # dark background
    unused = [n for n in names if n not in used]
    if unused:
        notes.append(f"{', '.join(unused)} not used by {chosen}.")
    ref = vols[names[0]]
    provenance = {
        **prov,
        "task": "synthesis",
        "synthetic": True,
        "target": target,
        "sources": used,
        "method": chosen,
        "inputs": {n: str(vols[n].meta.get("path", vols[n].name)) for n in used},
        "output_grid": names[0],
        "units": OUTPUT_UNITS,
    }
    image = mark_synthetic(ref.with_data(data), target=target, sources=used, method=chosen,
                           provenance=provenance)
    image.meta["description"] += UNITS_STAMP  # the NIfTI description states the scale (<= 80 chars)
    report(4, 4, "done")
    return Synthesis(image, target, used, chosen, provenance, notes)


def _run_model(spec: str, target: str, vols: dict[str, Volume], names: list[str], device: str,
               flips: bool | None, report: ProgressCallback,
               cancel: CancelToken | None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The own multi-contrast model on the sources; returns (data, foreground, provenance)."""

    from ..inference import get_model
    from ..models.synthnet import TARGETS as NET_TARGETS
    from ..models.synthnet import foreground, normalise, run_network
    from ..volume import reorient, restore_orientation

    card = _card(spec)
    if target not in card_targets(card) or target not in NET_TARGETS:
        raise ValueError(f"Model {card.id} does not synthesise {target}; it makes "
                         f"{', '.join(card_targets(card)) or 'nothing'}.")
    t0 = time.perf_counter()
    report(1, 4, f"loading {card.id}")
    loaded = get_model(card, device)
    check(cancel)
    report(1, 4, f"normalising {', '.join(names)}")
    # the network runs in the training scans' voxel orientation (LPS), exactly reordered and back
    lps = {n: reorient(vols[n], TRAINING_AXCODES) for n in names}
    transform = lps[names[0]][1]
    normalised = {n: normalise(lps[n][0].data) for n in names}
    fg = np.any([foreground(vols[n].data) for n in names], axis=0)
    if not any(v.any() for v in normalised.values()):
        raise ValueError(f"Every source ({', '.join(names)}) is empty or constant: "
                         "nothing to synthesise from.")
    check(cancel)
    use_flips = bool(card.inference.get("flips", False)) if flips is None else bool(flips)
    report(2, 4, f"synthesising {target} from {', '.join(names)}")
    reference = None
    if card.architecture.get("residual"):  # the network corrects histogram matching onto these
        reference = {t: _quantiles_of(card, t) for t in NET_TARGETS}
    spacing = float(card.spacing[0]) if card.spacing else None
    data = run_network(loaded.module, normalised, target, flips=use_flips, device=loaded.device,
                       cancel=cancel, reference=reference, affine=lps[names[0]][0].affine, spacing=spacing)
    data = np.ascontiguousarray(restore_orientation(data, transform))
    prov = {
        "model_id": card.id,
        "model_name": card.name,
        "weights_sha256": loaded.sha256,
        "card_path": str(card.card_path) if card.card_path else None,
        "parameters": {"flips": use_flips, "normalisation": "zscore_foreground per source",
                       "network_spacing_mm": spacing},
        "package_version": __version__,
        "device": str(loaded.device),
        "seconds": round(time.perf_counter() - t0, 3),
        "intended_use": card.intended_use,
    }
    return data, fg, prov


def _choose(method: str, target: str, names: list[str]) -> str:
    if method in ("auto", "", None):
        options = synthesis_methods(names, target)
        if not options:
            raise ValueError(
                f"No model or reference distribution can synthesise {target} from {', '.join(names)}."
            )
        return options[0]
    return HISTOGRAM if method.lower() == HISTOGRAM else method


def _card(spec: str) -> Any:
    from ..models.registry import resolve_model

    try:
        card = resolve_model(spec)
    except KeyError as exc:
        raise ValueError(str(exc.args[0]) if exc.args else str(exc)) from exc
    if card.task != "synthesis" or card.output_kind != "image":
        raise ValueError(f"Model {card.id} is a {card.task} model, not a synthesis model.")
    return card


def _foreground(vol: Volume) -> np.ndarray:
    from ..models.synthnet import foreground

    return foreground(vol.data)


def _histogram(vol: Volume, quantiles: list[float]) -> tuple[np.ndarray, np.ndarray]:
    from ..models.synthnet import normalise

    fg = _foreground(vol)
    return match_quantiles(normalise(vol.data), fg, quantiles), fg


def _on_first_grid(given: list[tuple[str, Volume]], notes: list[str]) -> dict[str, Volume]:
    """Check every source and put it on the first one's grid (`study.onto_reference`)."""
    from ..study import onto_reference
    from .tumor import check_head_image

    ref_name, ref = given[0]
    out: dict[str, Volume] = {}
    for name, vol in given:
        if min(vol.shape) < 2:
            raise ValueError(
                f"The {name} image ({vol.name}) is a 2D image {vol.shape}; synthesis needs a 3D volume."
            )
        check_head_image(vol, name)
        out[name] = onto_reference(vol, ref, name, ref_name, notes)
    return out
