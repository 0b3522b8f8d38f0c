"""``classify`` (class probabilities) and ``explain`` (a heatmap with its reliability checks).

``explain`` writes the heatmap on FLAIR's grid (its shape and affine) and, with ``json``, the
prediction, every check's numbers and verdict, the forward passes used and seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .base import Job, JobContext, JobResult, device_option, option, overwrite_option


@dataclass(frozen=True, kw_only=True)
class _ClassifierExam(Job):
    """The options a classifier's commands share: its exam and model."""

    flair: str = option("--flair", help="FLAIR scan (defines the output grid)")
    t1c: str | None = option("--t1c", default=None, help="contrast-enhanced T1 (optional for tumor-present)")
    model: str = option("--model", default="tumor-present", help="model id or card (default: tumor-present)")
    json: str | None = option("--json", default=None, help="write the result as JSON here", output=True)
    device: str = device_option("cpu")


@dataclass(frozen=True, kw_only=True)
class ClassifyJob(_ClassifierExam):
    """Class probabilities (temperature-calibrated as the card says); JSON only, no sidecar."""

    command = "classify"
    help = "class probabilities of a classification model"


    def _run(self, ctx: JobContext) -> JobResult:
        from ..tasks.classify import classify

        if self.json and Path(self.json).exists():
            raise FileExistsError(f"{self.json} already exists; choose another name.")
        flair = ctx.load(self.flair)
        t1c = ctx.load(self.t1c) if self.t1c else None
        result = classify(flair, t1c, model=self.model, device=ctx.device)
        ctx.write_json(self.json, result.to_dict())
        probs = ", ".join(f"{k} {v:.3f}" for k, v in result.probabilities.items())
        return JobResult({"json": Path(self.json)} if self.json else {}, None,
                         [f"{self.flair}: {result.predicted} ({probs})"], ctx.warnings,
                         {"model_id": result.provenance.get("model_id"), "predicted_class": result.predicted,
                          **{f"p_{k}": round(v, 4) for k, v in result.probabilities.items()}})


@dataclass(frozen=True, kw_only=True)
class ExplainJob(_ClassifierExam):
    """A Grad-CAM or occlusion heatmap of a classifier's verdict, with randomisation, deletion /
    insertion and localisation checks."""

    command = "explain"
    help = "heatmap (Grad-CAM / occlusion) with reliability checks"

    method: str = option("--method", default="gradcam", choices=["gradcam", "occlusion", "occlusion-brute"],
                         help="heatmap method")
    output: str = option("-o", "--output", help="heatmap file (.nii.gz, .nii, .nrrd, .mha)", output=True)
    mask: str | None = option("--mask", default=None,
                              help="reference labels on FLAIR's grid "
                              "(localisation check; region for seg models)")
    target_class: str | None = option("--class", default=None,
                                      help="class index or name (default: the predicted class)")
    layer: str | None = option("--layer", default=None,
                               help="Grad-CAM layer (default: the last convolutional block)")
    sign: str = option("--sign", default="relu", choices=["relu", "abs", "signed"],
                       help="Grad-CAM sign handling")
    no_checks: bool = option("--no-checks", default=False, action="store_true",
                             help="skip randomisation and deletion/insertion")
    overwrite: bool = overwrite_option()

    def _run(self, ctx: JobContext) -> JobResult:
        from .. import io
        from ..tasks.classify import explain

        ctx.check_outputs(self.output, json=self.json)
        flair = ctx.load(self.flair)
        t1c = ctx.load(self.t1c) if self.t1c else None
        mask = ctx.load(self.mask) if self.mask else None
        result = explain(flair, t1c, model=self.model, method=self.method, target_class=self.target_class,
                         layer=self.layer, sign=self.sign, mask=mask, run_checks=not self.no_checks,
                         device=ctx.device, progress=ctx.progress, cancel=ctx.cancel)
        io.save(result.heatmap, self.output, overwrite=self.overwrite, description=f"{self.method} heatmap")
        found = result.to_dict()
        ctx.write_json(self.json, {"output": str(self.output), **found})
        record = ctx.record({"output": self.output, "json": self.json},
                            {"flair": self.flair, "t1c": self.t1c, "mask": self.mask}, result.provenance,
                            explanation={k: v for k, v in found.items() if k != "provenance"})
        lines = [f"{c.name}: {c.verdict} ({c.value}) {c.sentence}" for c in result.checks]
        lines.append(f"{self.output}: {result.method} for class {result.target_class}, "
                     f"{result.forward_passes} forward passes")
        files = {"output": Path(self.output), **({"json": Path(self.json)} if self.json else {})}
        return JobResult(files, record, lines, ctx.warnings, found)
