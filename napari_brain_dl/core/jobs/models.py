"""``skullstrip`` (a brain mask) and ``run`` (any model card on its inputs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .base import Job, JobContext, JobResult, device_option, option, overwrite_option


@dataclass(frozen=True, kw_only=True)
class SkullstripJob(Job):
    """Brain mask on the scan's own grid: mindgrab with a model, else template registration."""

    command = "skullstrip"
    help = "brain mask on the scan's own grid"

    input: str = option(help="scan (NIfTI, MGZ, NRRD or DICOM folder)")
    output: str = option(help="mask file to write (.nii.gz, .nii, .nrrd, .mha)", output=True)
    model: str | None = option("--model", default=None, help="mindgrab card, weights file or model folder; "
                               "default: template registration (no weights)")
    device: str = device_option()
    overwrite: bool = overwrite_option()

    def _run(self, ctx: JobContext) -> JobResult:
        from .. import io
        from ..models.registry import resolve_model
        from ..tasks.skullstrip import skullstrip

        ctx.check_outputs(self.output)
        device = ctx.device
        volume = ctx.load(self.input)
        model = resolve_model(self.model) if self.model else None
        mask = skullstrip(volume, model, device=device, progress=ctx.progress, cancel=ctx.cancel,
                          notify=ctx.notify)
        io.save(mask, self.output, overwrite=self.overwrite,
                description=f"brain mask {mask.meta.get('model_id', '')}")
        prov = mask.meta.get("provenance") or {}
        record = ctx.record({"output": self.output}, {"input": self.input}, prov)
        brain_ml = float(mask.data.sum()) * volume.voxel_volume_ml
        return JobResult({"output": Path(self.output)}, record, [f"{self.output}: brain {brain_ml:.0f} mL"],
                         ctx.warnings, {"model_id": prov.get("model_id"), "brain_ml": round(brain_ml, 3)})


@dataclass(frozen=True, kw_only=True)
class RunModelJob(Job):
    """Any model card on its inputs; several outputs get ``_<name>`` before the suffix."""

    command = "run"
    help = "run any model card on its inputs"

    model: str = option("--model", help="card, weights file, model/bundle folder or model id")
    input: list[str] = option("--input", help="input scan; repeat in the card's input order", action="append")
    output: str = option("-o", "--output", help="output file; several outputs add _<name> before the suffix",
                         output=True)
    json: str | None = option("--json", default=None, output=True,
                              help="write provenance (and region volumes) as JSON here")
    device: str = device_option()
    overwrite: bool = overwrite_option()

    def _run(self, ctx: JobContext) -> JobResult:
        from .. import io
        from ..io import suffix_of
        from ..models.registry import resolve_model
        from ..tasks.parcellate import region_volumes
        from ..tasks.run_model import run_model

        card = resolve_model(self.model)
        if len(self.input) != len(card.inputs):
            raise InputError(f"Model {card.id!r} needs {len(card.inputs)} input(s) in this order: "
                             f"{', '.join(card.inputs)}; got {len(self.input)}.")
        ctx.check_outputs(self.output, json=self.json)
        device = ctx.device
        volumes = [ctx.load(p) for p in self.input]
        pred = run_model(card, volumes, device=device, progress=ctx.progress, cancel=ctx.cancel,
                         notify=ctx.notify)
        out = Path(self.output)
        suffix = suffix_of(out)
        stem = str(out)[: len(str(out)) - len(suffix)]
        targets = {name: out if len(pred.outputs) == 1 else Path(f"{stem}_{name}{suffix}")
                   for name in pred.outputs}
        ctx.check_outputs(*targets.values())
        for name, vol in pred.outputs.items():
            io.save(vol, targets[name], overwrite=self.overwrite, description=f"{card.id} {name}")
        report = {"outputs": {k: str(v) for k, v in targets.items()}, "provenance": pred.provenance}
        if card.output_kind == "labels" and "labels" in pred.outputs:
            report["regions"] = region_volumes(pred.outputs["labels"], list(card.labels))
        ctx.write_json(self.json, report)
        files = {("output" if len(targets) == 1 else f"output_{k}"): v for k, v in targets.items()}
        record = ctx.record({**files, "json": self.json}, {f"input{i}": p for i, p in enumerate(self.input)},
                            pred.provenance)
        regions = {f"ml_{r['name']}": r["volume_ml"] for r in report.get("regions", [])}
        return JobResult({**files, **({"json": Path(self.json)} if self.json else {})}, record,
                         [f"{path}: {name}" for name, path in targets.items()], ctx.warnings,
                         {"model_id": pred.provenance.get("model_id"), **regions})
