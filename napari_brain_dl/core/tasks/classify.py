"""Classify a scan and explain the decision, with the checks every heatmap carries.

`classify` runs any classification model card (calibrated by the card's
``output.temperature``); `explain` computes a Grad-CAM or occlusion heatmap on the
scan's own grid (for a classifier: a chosen class; for a segmentation model: a chosen
class summed over a region, Seg-Grad-CAM), plus the randomisation, deletion/insertion and
(when a reference mask is given) localisation checks. The CLI and the Explain widget call
these two functions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..explain import checks as ck
from ..explain.frame import ModelFrame, prepare
from ..explain.gradcam import class_target, gradcam, region_target, resolve_layer
from ..explain.occlusion import estimate_passes, occlusion
from ..progress import CancelToken, ProgressCallback, check
from ..volume import Volume

DEFAULT_MODEL = "tumor-present"
METHODS = ("gradcam", "occlusion", "occlusion-brute")


@dataclass
class Classification:
    """Class probabilities (temperature-calibrated), the predicted class and provenance."""

    probabilities: dict[str, float]
    predicted: str
    predicted_index: int
    logits: list[float]
    temperature: float
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "probabilities": self.probabilities,
            "predicted_class": self.predicted,
            "predicted_index": self.predicted_index,
            "logits": self.logits,
            "temperature": self.temperature,
            "provenance": self.provenance,
        }


@dataclass
class Explanation:
    """A heatmap on the scan's grid with what it explains and its checks."""

    heatmap: Volume
    method: str
    target_class: str
    target_index: int
    layer: str | None
    classification: Classification | None
    checks: list[ck.CheckResult]
    forward_passes: int
    seconds: float
    provenance: dict[str, Any] = field(default_factory=dict)

    def check(self, name: str) -> ck.CheckResult | None:
        """The check called `name` (randomisation, deletion_insertion, localisation) or None."""
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (prediction, checks with numbers and verdicts, passes, seconds)."""
        return {
            "method": self.method,
            "target_class": self.target_class,
            "target_index": self.target_index,
            "layer": self.layer,
            "prediction": self.classification.to_dict() if self.classification else None,
            "checks": {c.name: c.to_dict() for c in self.checks},
            "forward_passes": self.forward_passes,
            "seconds": round(self.seconds, 2),
            "provenance": self.provenance,
        }


class _Passes:
    """Counts forward passes and reports them as progress."""

    def __init__(self, total: int, progress: ProgressCallback | None) -> None:
        self.done, self.total, self.progress = 0, total, progress

    def add(self, n: int) -> None:
        self.done += n
        self.total = max(self.total, self.done)
        if self.progress is not None:
            self.progress(self.done, self.total, f"forward passes {self.done}/{self.total}")


def _assemble(card: Any, flair: Volume | None, t1c: Volume | None, inputs: dict[str, Volume] | None):
    """Volumes in card order; optional inputs (architecture.optional_inputs) become empty channels."""
    given = {k.lower(): v for k, v in (inputs or {}).items() if v is not None}
    if flair is not None:
        given.setdefault("flair", flair)
    if t1c is not None:
        given.setdefault("t1c", t1c)
    optional = {str(n).lower() for n in card.architecture.get("optional_inputs", [])}
    missing = [n for n in card.inputs if n.lower() not in given and n.lower() not in optional]
    if missing:
        raise ValueError(f"Model {card.id!r} needs {', '.join(missing)}; it was not given.")
    ref = next(given[n.lower()] for n in card.inputs if n.lower() in given)
    _check_images(card, {n: given[n.lower()] for n in card.inputs if n.lower() in given})
    notes = [f"{n} not given: an empty channel was used." for n in card.inputs if n.lower() not in given]
    vols = [
        given[n.lower()]
        if n.lower() in given
        else Volume(np.zeros(ref.shape, np.float32), ref.affine, name=n)
        for n in card.inputs
    ]
    return vols, notes


def _check_images(card: Any, vols: dict[str, Volume]) -> None:
    """Refuse empty (constant) images; the project's own brain classifiers also need a head-sized image."""
    from .tumor import check_head_image

    for name, vol in vols.items():
        data = np.asarray(vol.data)
        if not np.isfinite(data).any() or np.nanmax(data) == np.nanmin(data):
            raise ValueError(f"The {name} image ({vol.name}) is empty: every voxel has the same value.")
        if card.architecture.get("type") == "project":
            check_head_image(vol, name)


def _load(model: Any, device: str):
    from ..inference import get_model

    loaded = get_model(model, device)
    return loaded, loaded.card


def _class_names(card: Any, k: int) -> list[str]:
    names = list(card.output.get("channels") or [lab.name for lab in card.labels])
    return [names[i] if i < len(names) else f"class {i}" for i in range(k)]


def _resolve_class(target: int | str | None, names: list[str], default: int) -> int:
    if target is None:
        return default
    if isinstance(target, str) and not target.lstrip("-").isdigit():
        if target not in names:
            raise ValueError(f"The model has no class {target!r}; its classes are {', '.join(names)}.")
        return names.index(target)
    index = int(target)
    if not 0 <= index < len(names):
        raise ValueError(
            f"Class index {index} is out of range: the model has {len(names)} classes "
            f"(0 to {len(names) - 1}: {', '.join(names)})."
        )
    return index


def _classify_frame(loaded: Any, frame: ModelFrame, notes: list[str]) -> Classification:
    card = loaded.card
    with torch.no_grad():
        out = loaded.module(frame.tensor(loaded.device))
    out = out[0] if isinstance(out, (tuple, list)) else out
    if out.ndim != 2:
        raise ValueError(
            f"Model {card.id!r} returns a {out.ndim - 2}D map, not class scores: it is a {card.task} model; "
            "explain a region of it (give a mask) or choose a classification model."
        )
    temperature = float(card.output.get("temperature", 1.0) or 1.0)
    logits = out[0].double().cpu()
    probs = torch.softmax(logits / temperature, 0).numpy()
    names = _class_names(card, len(probs))
    best = int(np.argmax(probs))
    prov = {
        "model_id": card.id,
        "task": card.task,
        "weights_sha256": loaded.sha256,
        "card_path": str(card.card_path) if card.card_path else None,
        "inputs": {
            n: str(v.meta.get("path", v.name)) for n, v in zip(card.inputs, frame.sources, strict=False)
        },
        "temperature": temperature,
        "notes": notes,
    }
    return Classification(
        {n: round(float(p), 6) for n, p in zip(names, probs, strict=True)},
        names[best],
        best,
        [round(float(v), 5) for v in logits],
        temperature,
        prov,
    )


def classify(
    flair: Volume | None = None,
    t1c: Volume | None = None,
    *,
    inputs: dict[str, Volume] | None = None,
    model: Any = DEFAULT_MODEL,
    device: str = "cpu",
) -> Classification:
    """Class probabilities of a classification model for one exam.

    Args:
        flair, t1c: Scans for models whose card names FLAIR / T1c inputs.
        inputs: Other contrasts by card input name (e.g. {"T1": vol}).
        model: Model id, card path or loaded model (default: tumor-present).
        device: cpu | cuda | auto.

    Raises:
        ValueError: Missing input, inputs on different grids, or a model that is no classifier.

    Example:
        >>> result = classify(load("t2f.nii.gz"))  # doctest: +SKIP
        >>> result.predicted, result.probabilities["tumour"] > 0.5  # doctest: +SKIP
        ('tumour', True)
    """
    loaded, card = _load(model, device)
    vols, notes = _assemble(card, flair, t1c, inputs)
    frame = prepare(card, vols, divisible=max(8, int(getattr(loaded.module, "divisor", 1))))
    return _classify_frame(loaded, frame, notes)


def explain(
    flair: Volume | None = None,
    t1c: Volume | None = None,
    *,
    inputs: dict[str, Volume] | None = None,
    model: Any = DEFAULT_MODEL,
    method: str = "gradcam",
    target_class: int | str | None = None,
    layer: str | None = None,
    sign: str = "relu",
    mask: Volume | None = None,
    region: Volume | None = None,
    run_checks: bool = True,
    patch: int = 16,
    stride: int = 8,
    device: str = "cpu",
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> Explanation:
    """Heatmap (Grad-CAM or occlusion) on the scan's grid, with its reliability checks.

    Args:
        method: gradcam | occlusion (fast, coarse-to-fine) | occlusion-brute.
        target_class: Class index or name (default: the predicted class; 1 for segmentation).
        layer: Grad-CAM layer name (default: the model's last convolutional block).
        sign: Grad-CAM sign handling: relu | abs | signed.
        mask: Reference mask on the scan's grid (e.g. tumour labels) for the localisation check.
        region: Segmentation models: the region whose class logits are explained (default: mask).
        run_checks: Compute the randomisation and deletion/insertion checks.
        patch, stride: Occlusion cube side and step, in model-grid voxels. Occlusion follows the
            target's probability (calibrated softmax; for a region, its mean probability), as MONAI's
            does; Grad-CAM follows the logit (the summed region logits).

    Raises:
        ValueError: Unknown method, class out of range, unknown layer, a segmentation model
            without a region, or inputs that do not fit the model.
        Cancelled: `cancel` was set.
    """
    start = time.perf_counter()
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    loaded, card = _load(model, device)
    module = loaded.module
    vols, notes = _assemble(card, flair, t1c, inputs)
    frame = prepare(card, vols, divisible=max(8, int(getattr(module, "divisor", 1))))
    x = frame.tensor(loaded.device)
    region = region if region is not None else mask
    is_classifier = card.task == "classification"
    if is_classifier:
        result = _classify_frame(loaded, frame, notes)
        passes_before = 1
        names = _class_names(card, len(result.logits))
        index = _resolve_class(target_class, names, result.predicted_index)
        temperature = result.temperature
        target = class_target(index)

        def prob(out: torch.Tensor) -> torch.Tensor:
            return torch.softmax(out.double() / temperature, 1)[:, index]
    else:
        if region is None:
            raise ValueError(
                f"Model {card.id!r} is a {card.task} model, not a classifier: give a region (mask) whose "
                "class scores should be explained, or choose a classification model."
            )
        result = None
        passes_before = 0
        names = [lab.name for lab in card.labels] or list(card.output.get("channels") or [])
        k = int(card.architecture.get("out_channels", len(names) or 2))
        names = _class_names(card, k) if len(names) != k else names
        index = _resolve_class(target_class, names, min(1, k - 1))
        region_mask = torch.from_numpy(frame.from_scan(region))
        if not region_mask.any():
            raise ValueError("The region to explain is empty on the model's grid.")
        target = region_target(index, region_mask[None])
        sigmoid = any(s["op"] == "sigmoid" for s in card.postprocessing)

        def prob(out: torch.Tensor) -> torch.Tensor:
            p = torch.sigmoid(out[:, index]) if sigmoid else torch.softmax(out, 1)[:, index]
            return p.flatten(1)[:, region_mask.flatten()].mean(1)

    def run(batch_x: torch.Tensor) -> torch.Tensor:
        out = module(batch_x)
        return out[0] if isinstance(out, (tuple, list)) else out

    layer_name = resolve_layer(module, layer)[0] if method == "gradcam" else None
    steps = 12
    occ_mode = "brute" if method == "occlusion-brute" else "fast"
    shape = tuple(frame.x.shape[1:])
    coarse_cost = estimate_passes(shape, patch, stride, "coarse")
    main_cost = 1 if method == "gradcam" else estimate_passes(shape, patch, stride, occ_mode)
    check_cost = (14 if method == "gradcam" else 4 * coarse_cost + 6) + 4 * (steps + 1) if run_checks else 0
    passes = _Passes(passes_before + main_cost + check_cost, progress)
    passes.add(passes_before)
    check(cancel)

    kept: dict[str, np.ndarray] = {}

    def map_of(net: torch.nn.Module, mode: str) -> np.ndarray:
        if method == "gradcam":
            passes.add(1)
            # the randomisation check compares |signed maps| (Spearman of |map|)
            return gradcam(net, x, target, layer_name, "signed" if mode == "check" else sign)[0]

        def score(b: torch.Tensor) -> torch.Tensor:  # occlusion follows the probability, as MONAI's does
            out = net(b)
            return prob(out[0] if isinstance(out, (tuple, list)) else out)

        done = passes.done
        occ = occlusion(
            score,
            x,
            patch=patch,
            stride=stride,
            mode=mode,
            cancel=cancel,
            report=lambda n: passes.add(done + n - passes.done),
        )
        if net is module and occ.coarse_map is not None:
            kept["coarse"] = occ.coarse_map  # the check's original map, without more passes
        return occ.coarse_map if mode == "coarse" and occ.coarse_map is not None else occ.map

    def score_of(net: torch.nn.Module) -> float:
        passes.add(1)
        with torch.no_grad():
            out = net(x)
        return float(target(out[0] if isinstance(out, (tuple, list)) else out)[0])

    heat = map_of(module, occ_mode)
    brain = frame.brain
    results: list[ck.CheckResult] = []
    if run_checks:
        check(cancel)
        mode = "check" if method == "gradcam" else "coarse"
        results.append(
            ck.randomisation(
                module,
                lambda m: map_of(m, mode),
                kept["coarse"] if "coarse" in kept else map_of(module, mode),
                brain,
                score_of,
                max_steps=5 if method == "gradcam" else 2,
                cancel=cancel,
            )
        )
        results.append(
            ck.deletion_insertion(
                lambda b: prob(run(b)), x, heat, brain, steps=steps, report=passes.add, cancel=cancel
            )
        )
    scan_map = frame.to_scan(heat)
    if mask is not None:
        if not mask.same_grid(frame.ref, atol=1e-3):
            raise ValueError(
                f"The mask {mask.name} is not on the grid of {frame.ref.name}; resample it first."
            )
        scan_brain = frame.to_scan(brain.astype(np.float32)) > 0.5
        results.append(ck.localisation(scan_map, np.asarray(mask.data) > 0, scan_brain))
    seconds = time.perf_counter() - start
    prov = {
        "model_id": card.id,
        "weights_sha256": loaded.sha256,
        "method": method,
        "layer": layer_name,
        "sign": sign if method == "gradcam" else None,
        "target_class": names[index],
        "occlusion": {"patch": patch, "stride": stride, "mode": occ_mode} if method != "gradcam" else None,
        "model_grid_shape": list(shape),
        "notes": notes,
        "seconds": round(seconds, 2),
        "forward_passes": passes.done,
    }
    heatmap = frame.ref.with_data(scan_map, name=f"{frame.ref.name}_{method}", provenance=prov)
    if progress is not None:
        progress(passes.done, passes.done, "done")
    return Explanation(
        heatmap, method, names[index], index, layer_name, result, results, passes.done, seconds, prov
    )
