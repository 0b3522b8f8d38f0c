"""``super-resolve``: a thick-slice scan -> an isotropic volume covering the same field of view.

An already isotropic scan is not an error: the reason is the summary and nothing is written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import sentence
from .base import Job, JobContext, JobResult, device_option, option, overwrite_option


@dataclass(frozen=True, kw_only=True)
class SuperResolveJob(Job):
    """Self-supervised super-resolution (or B-spline, or a model card) with its own self-check."""

    command = "super-resolve"
    help = "thick-slice MRI -> isotropic volume (self-supervised, B-spline or a model)"

    input: str = option(help="scan (NIfTI/MGZ/NRRD file or DICOM folder)")
    output: str = option(help="output .nii.gz / .nii (or .nrrd / .mha)", output=True)
    method: str = option("--method", default="self-supervised",
                         help="self-supervised (default) | bspline | "
                         "a super_resolution model card (id or path)")
    spacing: float | None = option("--spacing", default=None, parse=float,
                                   help="output voxel size in mm (default: in-plane)")
    seed: int = option("--seed", default=0, parse=int, help="seed of the self-supervised training")
    json: str | None = option("--json", default=None, output=True,
                              help="write provenance, grids in/out, seconds and method as JSON here")
    device: str = device_option()
    overwrite: bool = overwrite_option()

    def _run(self, ctx: JobContext) -> JobResult:
        from .. import io
        from ..tasks.super_resolve import NothingToDo, super_resolve

        start = time.perf_counter()
        ctx.check_outputs(self.output, json=self.json)
        device = ctx.device
        volume = ctx.load(self.input)
        try:
            result = super_resolve(volume, method=self.method, spacing=self.spacing, device=device,
                                   seed=self.seed, progress=ctx.progress, cancel=ctx.cancel)
        except NothingToDo as exc:
            return JobResult(summary=[sentence(exc)], warnings=ctx.warnings)
        io.save(result.image, self.output, overwrite=self.overwrite,
                description=result.image.meta.get("description"))
        seconds = round(time.perf_counter() - start, 2)
        report = {"input": str(self.input), "output": str(self.output), "method": result.method,
                  "grid_in": volume.info() | {"warnings": volume.warnings},
                  "grid_out": {k: v for k, v in result.image.info().items() if k != "warnings"},
                  "seconds": seconds, "notes": result.notes,
                  "self_check": result.provenance.get("self_check"),
                  "provenance": result.provenance}
        ctx.write_json(self.json, report)
        record = ctx.record({"output": self.output, "json": self.json}, {"input": self.input},
                            result.provenance)
        shape = "x".join(map(str, result.image.shape))
        lines = [f"note: {note}" for note in result.notes]
        lines.append(f"{self.output}: {shape} at {result.image.spacing[0]:.3f} mm isotropic "
                     f"({result.method}, {seconds:.1f} s)")
        files = {"output": Path(self.output), **({"json": Path(self.json)} if self.json else {})}
        return JobResult(files, record, lines, ctx.warnings,
                         {"model_id": result.method, "spacing_mm": round(min(result.image.spacing), 3)})
