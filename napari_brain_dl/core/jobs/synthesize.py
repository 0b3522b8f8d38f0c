"""``synthesize``: a missing contrast computed from the ones given, stamped SYNTHETIC.

The model ``synth-mri`` takes any subset of T1, T1c, T2, FLAIR and says which it used; T1c is
never synthesised. The output lies on the grid of the first contrast given (``source_order``;
the command line records the order of its flags), is NIfTI only, and its name ends with
``_synthetic`` before the extension (another name is refused with the right one suggested). It
is in z-score units of the target inside the brain (`core.tasks.synthesize.OUTPUT_UNITS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .base import Job, JobContext, JobResult, device_option, not_an_option, option, overwrite_option

CONTRASTS = {"t1": "T1", "t1c": "T1c", "t2": "T2", "flair": "FLAIR"}  # option -> contrast


def target_contrast(text: str) -> str:
    """A contrast name the synthesiser knows (``flair`` -> ``FLAIR``); raises ValueError otherwise."""
    from ..tasks.synthesize import canonical

    return canonical(text)


@dataclass(frozen=True, kw_only=True)
class SynthesizeJob(Job):
    """A missing contrast from the acquired ones (marked SYNTHETIC: never an acquired scan)."""

    command = "synthesize"
    help = "synthesise a missing contrast (marked SYNTHETIC: never an acquired scan)"

    t1: str | None = option("--t1", default=None, ordered=True, help="acquired T1 scan")
    t1c: str | None = option("--t1c", default=None, ordered=True, help="acquired T1c scan")
    t2: str | None = option("--t2", default=None, ordered=True, help="acquired T2 scan")
    flair: str | None = option("--flair", default=None, ordered=True, help="acquired FLAIR scan")
    target: str = option("--target", parse=target_contrast,
                         help="contrast to synthesise: flair, t2 or t1 (t1c is never synthesised)")
    output: str = option("-o", "--output", output=True,
                         help="NIfTI file to write, name ending _synthetic (pat_flair_synthetic.nii.gz)")
    model: str = option("--model", default="auto",
                        help="auto (synth-mri, else histogram), a model id or card, or histogram (baseline)")
    json: str | None = option("--json", default=None, output=True,
                              help='write provenance (with "synthetic": true) as JSON here')
    device: str = device_option()
    overwrite: bool = overwrite_option()
    source_order: list[str] | None = not_an_option()  # contrast options in the order given (grid: the first)

    def _run(self, ctx: JobContext) -> JobResult:
        from ..synthetic import check_synthetic_path, save_synthetic
        from ..tasks.synthesize import check_target, synthesize

        target = target_contrast(self.target)
        check_target(target)
        out = check_synthetic_path(self.output)
        ctx.check_outputs(out, json=self.json)
        order = self.sources()
        if not order:
            raise InputError("Give at least one acquired contrast (--t1, --t1c, --t2 or --flair).")
        if target in [CONTRASTS[d] for d in order]:
            raise InputError(f"{target} is already given (--{target.lower()}): "
                             "there is nothing to synthesise.")
        device = ctx.device
        sources = {CONTRASTS[d]: ctx.load(getattr(self, d)) for d in order}
        result = synthesize(sources, target, method=self.model, device=device, progress=ctx.progress,
                            cancel=ctx.cancel)
        for note in result.notes:
            ctx.notify(note)
        save_synthetic(result.image, out, overwrite=self.overwrite)
        report = {"output": str(out), "synthetic": True, "description": result.image.meta["description"],
                  "target": result.target, "sources": result.sources, "method": result.method,
                  "units": result.provenance.get("units"),
                  "output_grid": f"{CONTRASTS[order[0]]} ({getattr(self, order[0])})",
                  "notes": result.notes, "provenance": result.provenance}
        ctx.write_json(self.json, report)
        record = ctx.record({"output": str(out), "json": self.json}, {d: getattr(self, d) for d in order},
                            result.provenance, synthetic=True, description=report["description"])
        line = (f"{out}: {report['description']} (synthetic, not an acquired scan; "
                f"used {', '.join(result.sources)})")
        files = {"output": out, **({"json": Path(self.json)} if self.json else {})}
        return JobResult(files, record, [line], ctx.warnings,
                         {"model_id": result.method, "synthetic": target})

    def sources(self) -> list[str]:
        """The contrast options given, in ``source_order`` (else t1, t1c, t2, flair)."""
        order = [d for d in (self.source_order or []) if d in CONTRASTS]
        order += [d for d in CONTRASTS if d not in order]
        return [d for d in order if getattr(self, d)]
