"""One runner per batch task: pick a subject's scans, build the task's job, run it into the partial folder.

A runner gets the subject, the partial folder to write into and the final folder the results
will be renamed to; it returns the CSV values (volumes in mL, predictions). The job is the
one the command line builds (`core.jobs`), so every image gets the same provenance sidecar,
naming the final folder, and `napari-brain-dl rerun` rebuilds it from there.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .cohort import Subject
from .errors import InputError
from .jobs import (
    ClassifyJob,
    Job,
    JobResult,
    RunModelJob,
    SegmentJob,
    SkullstripJob,
    SuperResolveJob,
    SynthesizeJob,
)

Runner = Callable[[Subject, Path, Path, dict[str, Any]], dict[str, Any]]
VOLUMES = ("whole_tumor_ml", "tumor_core_ml", "enhancing_ml", "necrotic_core_ml", "edema_ml")


def _need(subject: Subject, *contrasts: str) -> None:
    missing = [c for c in contrasts if c not in subject.files]
    if missing:
        found = ", ".join(sorted(subject.files)) or "no scans"
        raise InputError(f"{subject.id} lacks {', '.join(missing)} (found: {found}).")


def _pick(subject: Subject, options: dict[str, Any], order: tuple[str, ...]) -> str:
    wanted = options.get("contrast")
    if wanted:
        _need(subject, wanted)
        return str(wanted)
    choice = next((c for c in order if c in subject.files), next(iter(subject.files), None))
    if choice is None:
        raise InputError(f"{subject.id} has no scans.")
    return choice


def _run(job: Job, final: Path) -> JobResult:
    return job.run(land_in=final, record_extra={"batch": True})


def _file(subject: Subject, contrast: str) -> str:
    return str(subject.files[contrast])


def segment(subject: Subject, partial: Path, final: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Tumour labels (BraTS 2023) and their volumes; needs FLAIR or T1c (without T1c: whole tumour only,
    the core and enhancing volumes are left empty, not 0)."""
    scans = {c: _file(subject, c) for c in ("flair", "t1c", "t1", "t2") if c in subject.files}
    model = {"model": options["model"]} if options.get("model") else {}
    m = _run(SegmentJob(**scans, **model, output=str(partial / "tumor.nii.gz"), device=options["device"]),
             final).values
    return {"model_id": m["model_id"], **{k: None if m[k] is None else round(m[k], 3) for k in VOLUMES},
            "measurable_lesions": m["measurable_lesions"]}


def skullstrip(subject: Subject, partial: Path, final: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Brain mask (mindgrab with ``model``, else template registration) and brain volume."""
    contrast = _pick(subject, options, ("t1", "t1c", "t2", "flair"))
    return _run(SkullstripJob(input=_file(subject, contrast), output=str(partial / "brainmask.nii.gz"),
                              model=options.get("model"), device=options["device"]), final).values


def parcellate(subject: Subject, partial: Path, final: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Region labels and one volume column per region (needs ``model``, e.g. model21_104class)."""
    if not options.get("model"):
        raise InputError("parcellate needs --model (e.g. the brainchop model21_104class folder).")
    from . import io
    from .models.registry import resolve_model
    from .tasks.parcellate import label_infos, region_volumes

    contrast = _pick(subject, options, ("t1", "t1c"))
    job = RunModelJob(model=options["model"], input=[_file(subject, contrast)],
                      output=str(partial / "parcellation.nii.gz"), device=options["device"])
    result = _run(job, final)
    # region names as `parcellate` gives them: a colormap.json distributed beside the weights wins
    regions = region_volumes(io.load(result.files["output"]), label_infos(resolve_model(options["model"])))
    return {"model_id": result.values["model_id"], **{f"ml_{r['name']}": r["volume_ml"] for r in regions}}


def synthesize(subject: Subject, partial: Path, final: Path, options: dict[str, Any]) -> dict[str, Any]:
    """The missing ``target`` contrast (default FLAIR), stamped synthetic in name and header."""
    from .jobs.synthesize import CONTRASTS, target_contrast

    target = target_contrast(options.get("target") or "flair")
    sources = {c: _file(subject, c) for c in subject.files if c in CONTRASTS and CONTRASTS[c] != target}
    if not sources:
        raise InputError(f"{subject.id} has no source contrast to synthesise {target} from.")
    job = SynthesizeJob(**sources, source_order=list(sources), target=target,
                        output=str(partial / f"{target.lower()}_synthetic.nii.gz"),
                        model=options.get("model") or "auto", device=options["device"])
    return _run(job, final).values


def super_resolve(subject: Subject, partial: Path, final: Path, options: dict[str, Any]) -> dict[str, Any]:
    """An isotropic image from the most anisotropic scan (or ``contrast``)."""
    from . import io

    if options.get("contrast"):
        contrast = _pick(subject, options, ())
    else:
        if not subject.files:
            raise InputError(f"{subject.id} has no scans.")
        spacings = {c: io.load(p).spacing for c, p in subject.files.items()}
        contrast = max(spacings, key=lambda c: max(spacings[c]) / min(spacings[c]))
    job = SuperResolveJob(input=_file(subject, contrast), output=str(partial / f"{contrast}_superres.nii.gz"),
                          method=options.get("model") or options.get("method") or "self-supervised",
                          spacing=options.get("spacing"), device=options["device"])
    result = _run(job, final)
    if not result.files:  # already isotropic: the reason is the subject's error
        raise InputError(" ".join(result.summary))
    return {"model_id": result.values["model_id"], "contrast": contrast,
            "spacing_mm": result.values["spacing_mm"]}


def classify(subject: Subject, partial: Path, final: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Class probabilities (FLAIR, T1c when present); the full result in classification.json."""
    _need(subject, "flair")
    t1c = _file(subject, "t1c") if "t1c" in subject.files else None
    model = {"model": options["model"]} if options.get("model") else {}
    job = ClassifyJob(flair=_file(subject, "flair"), t1c=t1c, **model,
                      json=str(partial / "classification.json"), device=options["device"])
    return _run(job, final).values


RUNNERS: dict[str, Runner] = {
    "segment": segment,
    "skullstrip": skullstrip,
    "parcellate": parcellate,
    "synthesize": synthesize,
    "super-resolve": super_resolve,
    "classify": classify,
}
