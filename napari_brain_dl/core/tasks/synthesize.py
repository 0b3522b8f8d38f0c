"""Synthesis of a missing MR contrast (FLAIR, T2, ...) from the contrasts an exam has.

Two methods:
- an own model (card task ``synthesis``, output kind ``image``): a small 3D U-Net trained by
  ``scripts/train_synthesis.py`` (e.g. ``synth-flair-from-t1c``, ``synth-t2-from-t1``);
- ``histogram``: no training; the source's in-brain quantiles are mapped onto a reference
  intensity distribution of the target contrast (101 quantiles of the z-scored target inside
  the brain over the training cases, stored in the synthesis model's card). A baseline only.

Every result is marked synthetic (`napari_brain_dl.core.synthetic.mark_synthetic`): its name,
metadata and every file written from it say so. It can never pass for an acquired scan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..progress import CancelToken, ProgressCallback, check
from ..volume import Volume

CONTRASTS = ("T1", "T1c", "T2", "FLAIR")
HISTOGRAM = "histogram"
QUANTILES = np.linspace(0.0, 100.0, 101)


@dataclass
class Synthesis:
    """Result of `synthesize`.

    Attributes:
        image: The synthetic contrast on the first source's grid, marked synthetic.
        target: Contrast synthesised ("FLAIR", "T2", ...).
        sources: Contrasts it was computed from, in the order used.
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


# ------------------------------------------------------------------ histogram baseline (numpy)
def brain_quantiles(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """101 quantiles (0, 1, ..., 100 %) of `x` inside `mask`, as float64."""
    return np.percentile(np.asarray(x, np.float64)[mask], QUANTILES)


def match_quantiles(x: np.ndarray, mask: np.ndarray, reference: Iterable[float]) -> np.ndarray:
    """Map `x`'s in-mask quantiles onto `reference` (monotone, piecewise linear); 0 outside `mask`.

    Example:
        >>> x = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
        >>> out = match_quantiles(x, x >= 0, np.linspace(-1, 1, 101))
        >>> float(out.min()), float(out.max())
        (-1.0, 1.0)
    """
    ref = np.asarray(list(reference), np.float64)
    src = brain_quantiles(x, mask)
    src = np.maximum.accumulate(src + np.arange(src.size) * 1e-9)  # strictly increasing for interp
    out = np.zeros(np.shape(x), np.float32)
    out[mask] = np.interp(np.asarray(x, np.float64)[mask], src, ref)
    return out


# ------------------------------------------------------------------ models
def synthesis_cards(target: str | None = None) -> list[Any]:
    """Available synthesis model cards (task ``synthesis``), optionally only those for `target`."""
    from ..models.registry import list_models

    cards = [c for c in list_models() if c.task == "synthesis" and c.available]
    return [c for c in cards if target is None or _card_target(c) == canonical(target)]


def _card_target(card: Any) -> str | None:
    value = card.output.get("target")
    try:
        return canonical(value) if value else None
    except ValueError:
        return None


def _card_inputs(card: Any) -> list[str]:
    return [canonical(i) for i in card.inputs]


def synthesis_methods(present: Iterable[str], target: str) -> list[str]:
    """Methods that can synthesise `target` from the `present` contrasts, best first.

    Own models whose inputs are all present come first (model ids), then ``"histogram"``
    when a reference intensity distribution of `target` is known. Empty when `target` is
    already present. For the widget's drop-down.

    Example:
        >>> synthesis_methods(["T1c"], "FLAIR")  # doctest: +SKIP
        ['synth-flair-from-t1c', 'histogram']
    """
    have = {canonical(p) for p in present}
    target = canonical(target)
    if target in have or not have:
        return []
    cards = synthesis_cards(target)
    methods = [c.id for c in cards if set(_card_inputs(c)) <= have]
    if any(c.output.get("reference_quantiles") for c in cards):
        methods.append(HISTOGRAM)
    return methods


def _reference(target: str) -> tuple[list[float], Any]:
    for card in synthesis_cards(target):
        if card.output.get("reference_quantiles"):
            return [float(q) for q in card.output["reference_quantiles"]], card
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
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> Synthesis:
    """Synthesise the missing contrast `target` from the given `sources`; the result is marked synthetic.

    The output lies on the grid of the first source given (its shape and affine exactly); other
    sources are resampled onto it (linear) when they cover the same space. Intensities are in
    z-score units of the target inside the brain (mean 0, sd 1 over the training brains); outside
    the source's foreground they hold the lowest value inside it, so the background shows dark.
    The units of an acquired scan are not recoverable.

    Args:
        sources: {"T1" | "T1c" | "T2" | "FLAIR" (any case): Volume or None}, first one = output grid.
        target: Contrast to synthesise; must not be among the sources.
        method: "auto" (best own model for these sources, else histogram), "histogram"
            (baseline: source quantiles mapped onto a reference distribution), or a model id / card path.
        device: auto | cpu | cuda | mps.
        progress: ``progress(done, total, text)``.
        cancel: Token polled between steps.

    Raises:
        ValueError: Target already present, no / 2D / empty source, the model's source missing,
            sources covering different space, or an unknown method.
        Cancelled: `cancel` was set.

    Example:
        >>> syn = synthesize({"T1c": load("t1c.nii.gz")}, "FLAIR")  # doctest: +SKIP
        >>> syn.image.name, syn.image.meta["synthetic"], syn.method  # doctest: +SKIP
        ('FLAIR (synthetic)', True, 'synth-flair-from-t1c')
    """
    from ..synthetic import mark_synthetic

    report = progress or (lambda d, t, s: None)
    target = canonical(target)
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
    report(0, 3, "choosing the method")
    chosen = _choose(method, target, names)
    if chosen == HISTOGRAM:
        quantiles, card = _reference(target)
        src = next((n for n in _card_inputs(card) if n in vols), names[0])
        report(1, 3, f"matching the {src} histogram onto {target}")
        data, fg = _histogram(vols[src], quantiles)
        prov: dict[str, Any] = {"model_id": None, "reference_from": card.id,
                                "weights_sha256": None, "card_path": str(card.card_path)}
        used = [src]
    else:
        from ..inference import predict

        card = _card(chosen)
        used = _card_inputs(card)
        missing = [n for n in used if n not in vols]
        if missing:
            raise ValueError(
                f"Model {card.id} needs {', '.join(missing)}, which the exam lacks; "
                f"available methods: {', '.join(synthesis_methods(names, target)) or 'none'}."
            )

        def step(done: int, total: int, text: str) -> None:
            report(1 + done / max(total, 1), 3, text)

        pred = predict(card, [vols[n] for n in used], device=device, progress=step, cancel=cancel)
        fg = _foreground(vols[used[0]])
        data = np.asarray(pred.primary.data, np.float32)
        prov = dict(pred.provenance)
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
        "units": "z-score of the target inside the brain; its lowest value outside the source's foreground",
    }
    image = mark_synthetic(ref.with_data(data), target=target, sources=used, method=chosen,
                           provenance=provenance)
    report(3, 3, "done")
    return Synthesis(image, target, used, chosen, provenance, notes)


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
    data = np.nan_to_num(np.asarray(vol.data, np.float32))
    return data > data.min()


def _histogram(vol: Volume, quantiles: list[float]) -> tuple[np.ndarray, np.ndarray]:
    from ..models.prepost import zscore_foreground

    fg = _foreground(vol)
    return match_quantiles(zscore_foreground(np.nan_to_num(vol.data)), fg, quantiles), fg


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
