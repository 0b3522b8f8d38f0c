"""One runner per batch task: load a subject's scans, call the task's core function, write results.

A runner gets the subject, the partial folder to write into and the final folder the results
will be renamed to; it returns the CSV values (volumes in mL, predictions). Every image gets a
provenance sidecar whose paths and options name the final folder, with the CLI command that
reproduces it (`napari-brain-dl rerun` works on batch outputs too).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import io
from .cohort import Subject
from .provenance import absolute_paths, build_record, write_sidecar

Runner = Callable[[Subject, Path, Path, dict[str, Any]], dict[str, Any]]


def _need(subject: Subject, *contrasts: str) -> None:
    missing = [c for c in contrasts if c not in subject.files]
    if missing:
        found = ", ".join(sorted(subject.files)) or "no scans"
        raise ValueError(f"{subject.id} lacks {', '.join(missing)} (found: {found}).")


def _pick(subject: Subject, options: dict[str, Any], order: tuple[str, ...]) -> str:
    wanted = options.get("contrast")
    if wanted:
        _need(subject, wanted)
        return str(wanted)
    choice = next((c for c in order if c in subject.files), next(iter(subject.files), None))
    if choice is None:
        raise ValueError(f"{subject.id} has no scans.")
    return choice


def _sidecar(target: Path, final: Path, command: str | None, options: dict[str, Any],
             inputs: dict[str, Any], result: dict[str, Any], started: float, **extra: Any) -> None:
    record = build_record(command=command or "batch", options=absolute_paths(options), inputs=inputs,
                          outputs={"output": target}, result=result, started=started,
                          extra={"output_options": ["output"], "batch": True, **extra})
    record["outputs"]["output"]["path"] = str(final / target.name)
    write_sidecar(target, record, recorded_as=final / target.name)


def segment(subject: Subject, partial: Path, final: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Tumour labels (BraTS 2023) and their volumes; needs FLAIR or T1c (without T1c: whole tumour only,
    the core and enhancing volumes are left empty, not 0)."""
    from .tasks.measure import tumor_measurements
    from .tasks.tumor import DEFAULT_MODEL, segment_tumor

    started = time.time()
    files = {c: subject.files.get(c) for c in ("flair", "t1c", "t1", "t2")}
    vols = {c: io.load(p) if p else None for c, p in files.items()}
    model = options.get("model") or DEFAULT_MODEL
    seg = segment_tumor(vols["flair"], vols["t1c"], vols["t1"], vols["t2"], model=model,
                        device=options["device"])
    target = io.save(seg.labels, partial / "tumor.nii.gz", description=f"tumour labels {model}")
    m = tumor_measurements(seg.labels)
    cli = {**files, "output": final / target.name, "json": None, "device": options["device"],
           "overwrite": False, "model": model, "tta": False, "uncertainty": None}
    _sidecar(target, final, "segment", cli, files, seg.provenance, started, measurements=m)
    keys = ("whole_tumor_ml", "tumor_core_ml", "enhancing_ml", "necrotic_core_ml", "edema_ml")
    left_out = {"tumor_core_ml", "enhancing_ml", "necrotic_core_ml", "edema_ml"} if seg.provenance.get(
        "regions_left_out") else set()
    return {"model_id": seg.provenance.get("model_id"),
            **{k: None if k in left_out else round(m[k], 3) for k in keys},
            "measurable_lesions": None if left_out else m["measurable_lesions"]}


def skullstrip(subject: Subject, partial: Path, final: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Brain mask (mindgrab with ``model``, else template registration) and brain volume."""
    from .tasks.skullstrip import skullstrip as strip

    started = time.time()
    contrast = _pick(subject, options, ("t1", "t1c", "t2", "flair"))
    vol = io.load(subject.files[contrast])
    mask = strip(vol, options.get("model"), device=options["device"])
    target = io.save(mask, partial / "brainmask.nii.gz", description="brain mask")
    prov = mask.meta.get("provenance", {})
    cli = {"input": subject.files[contrast], "output": final / target.name, "model": options.get("model"),
           "device": options["device"], "overwrite": False}
    _sidecar(target, final, "skullstrip", cli, {"input": subject.files[contrast]}, prov, started)
    brain_ml = float(mask.data.sum()) * vol.voxel_volume_ml
    return {"model_id": prov.get("model_id"), "brain_ml": round(brain_ml, 3)}


def parcellate(subject: Subject, partial: Path, final: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Region labels and one volume column per region (needs ``model``, e.g. model21_104class)."""
    from .tasks.parcellate import parcellate as parc

    started = time.time()
    if not options.get("model"):
        raise ValueError("parcellate needs --model (e.g. the brainchop model21_104class folder).")
    contrast = _pick(subject, options, ("t1", "t1c"))
    vol = io.load(subject.files[contrast])
    result = parc(vol, options["model"], device=options["device"])
    target = io.save(result.labels, partial / "parcellation.nii.gz", description="parcellation")
    prov = result.labels.meta.get("provenance", {})
    cli = {"model": options["model"], "input": [subject.files[contrast]], "output": final / target.name,
           "json": None, "device": options["device"], "overwrite": False}
    _sidecar(target, final, "run", cli, {"input0": subject.files[contrast]}, prov, started,
             regions=result.regions)
    return {"model_id": prov.get("model_id"),
            **{f"ml_{r['name']}": r["volume_ml"] for r in result.regions}}


def synthesize(subject: Subject, partial: Path, final: Path, options: dict[str, Any]) -> dict[str, Any]:
    """The missing ``target`` contrast (default FLAIR), stamped synthetic in name and header."""
    from .synthetic import save_synthetic
    from .tasks.synthesize import canonical
    from .tasks.synthesize import synthesize as synth

    started = time.time()
    target_name = canonical(options.get("target") or "flair")
    sources = {c: p for c, p in subject.files.items() if c in ("t1", "t1c", "t2", "flair")
               and canonical(c) != target_name}
    if not sources:
        raise ValueError(f"{subject.id} has no source contrast to synthesise {target_name} from.")
    result = synth({c: io.load(p) for c, p in sources.items()}, target_name,
                   method=options.get("model") or "auto", device=options["device"])
    target = save_synthetic(result.image, partial / f"{target_name.lower()}_synthetic.nii.gz")
    cli = {**sources, "target": target_name, "output": final / target.name, "json": None,
           "model": options.get("model") or "auto", "device": options["device"], "overwrite": False}
    _sidecar(target, final, "synthesize", cli, sources, result.provenance, started, synthetic=True)
    return {"model_id": result.method, "synthetic": target_name}


def super_resolve(subject: Subject, partial: Path, final: Path, options: dict[str, Any]) -> dict[str, Any]:
    """An isotropic image from the most anisotropic scan (or ``contrast``)."""
    from .tasks.super_resolve import super_resolve as sr

    started = time.time()
    if options.get("contrast"):
        contrast = _pick(subject, options, ())
        vol = io.load(subject.files[contrast])
    else:
        loaded = {c: io.load(p) for c, p in subject.files.items()}
        if not loaded:
            raise ValueError(f"{subject.id} has no scans.")
        contrast = max(loaded, key=lambda c: max(loaded[c].spacing) / min(loaded[c].spacing))
        vol = loaded[contrast]
    kwargs = {"spacing": options["spacing"]} if options.get("spacing") else {}
    method = options.get("model") or options.get("method") or "self-supervised"
    result = sr(vol, method=method, device=options["device"], **kwargs)
    target = io.save(result.image, partial / f"{contrast}_superres.nii.gz", description="super-resolved")
    cli = {"input": subject.files[contrast], "output": final / target.name, "method": method,
           "spacing": options.get("spacing"), "seed": 0, "json": None, "device": options["device"],
           "overwrite": False}
    _sidecar(target, final, "super-resolve", cli, {"input": subject.files[contrast]}, result.provenance,
             started)
    return {"model_id": result.method, "contrast": contrast,
            "spacing_mm": round(min(result.image.spacing), 3)}


def classify(subject: Subject, partial: Path, final: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Class probabilities (FLAIR, T1c when present); the full result in classification.json."""
    import json

    from .tasks.classify import DEFAULT_MODEL
    from .tasks.classify import classify as cls

    _need(subject, "flair")
    flair = io.load(subject.files["flair"])
    t1c = io.load(subject.files["t1c"]) if "t1c" in subject.files else None
    result = cls(flair, t1c, model=options.get("model") or DEFAULT_MODEL, device=options["device"])
    (partial / "classification.json").write_text(json.dumps(result.to_dict(), indent=2, default=str))
    return {"model_id": result.provenance.get("model_id"), "predicted_class": result.predicted,
            **{f"p_{k}": round(v, 4) for k, v in result.probabilities.items()}}


RUNNERS: dict[str, Runner] = {
    "segment": segment,
    "skullstrip": skullstrip,
    "parcellate": parcellate,
    "synthesize": synthesize,
    "super-resolve": super_resolve,
    "classify": classify,
}
