"""``segment`` (automatic tumour labels) and ``click-segment`` (the interactive protocol, headless).

Both write BraTS 2023 labels on FLAIR's grid (FLAIR's shape and affine) and, with ``json``,
volumes in mL and provenance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from .base import Job, JobContext, JobResult, device_option, option, overwrite_option

LEFT_OUT = {"necrotic_core_ml": None, "tumor_core_ml": None, "enhancing_ml": None, "edema_ml": None,
            "lesions": [], "measurable_lesions": None, "sum_of_products_mm2": None}
LABELS_HELP = "label file to write (.nii.gz, .nii, .nrrd, .mha)"
JSON_HELP = "write volumes (mL) and provenance as JSON here"


def voxel_index(text: str) -> list[int]:
    """``"i,j,k"`` -> ``[i, j, k]`` (a voxel index of FLAIR)."""
    parts = text.replace(" ", "").split(",")
    if len(parts) != 3 or not all(p.lstrip("-").isdigit() for p in parts):
        raise ValueError(f"{text!r} is not a voxel index i,j,k (three integers).")
    return [int(p) for p in parts]


def _summary(output: str, m: dict[str, Any], after: str = "") -> str:
    return (f"{output}: whole tumour {m['whole_tumor_ml']:.1f} mL, tumour core {m['tumor_core_ml']:.1f} mL, "
            f"enhancing {m['enhancing_ml']:.1f} mL{after}")


@dataclass(frozen=True, kw_only=True)
class _TumourExam(Job):
    """The options both tumour commands share: the exam, the label file and its report."""

    flair: str = option("--flair", help="FLAIR scan (defines the output grid)")
    t1c: str = option("--t1c", help="contrast-enhanced T1 scan")
    t1: str | None = option("--t1", default=None, help="native T1 scan (optional)")
    t2: str | None = option("--t2", default=None, help="T2 scan (optional)")
    output: str = option("-o", "--output", help=LABELS_HELP, output=True)
    json: str | None = option("--json", default=None, help=JSON_HELP, output=True)
    device: str = device_option()
    overwrite: bool = overwrite_option()

    def files(self) -> dict[str, str | None]:
        """The exam's scans by role (None for one not given)."""
        return {"flair": self.flair, "t1c": self.t1c, "t1": self.t1, "t2": self.t2}


@dataclass(frozen=True, kw_only=True)
class SegmentJob(_TumourExam):
    """Automatic tumour labels; FLAIR or T1c (or both). Without T1c only the whole tumour is given and
    the report's ``regions_left_out`` says why (core and enhancing volumes are null)."""

    command = "segment"
    help = "automatic brain-tumour segmentation (BraTS 2023 labels); FLAIR and/or T1c"

    flair: str | None = option("--flair", default=None,
                               help="FLAIR scan (defines the output grid; FLAIR or T1c, or both)")
    t1c: str | None = option("--t1c", default=None,
                             help="contrast-enhanced T1 scan (without it only the whole tumour is given)")
    model: str = option("--model", default="brats-tumor-seg",
                        help="model id or card (default: brats-tumor-seg)")
    tta: bool = option("--tta", default=False, action="store_true",
                       help="4 flipped passes: uncertainty and slices to review")
    uncertainty: str | None = option("--uncertainty", default=None, output=True,
                                     help="with --tta: also write the uncertainty map here")
    no_click_refine: bool = option("--no-click-refine", default=False, action="store_true",
                                   help="keep the automatic model's whole tumour (by default, with FLAIR and "
                                        "T1c or T1, the click model re-outlines it from one click at its "
                                        "centre)")

    def _run(self, ctx: JobContext) -> JobResult:
        from .. import io
        from ..tasks.measure import tumor_measurements
        from ..tasks.tumor import segment_tumor

        if not self.flair and not self.t1c:
            raise InputError("Give --flair or --t1c: tumour segmentation needs at least one of them.")
        if self.uncertainty and not self.tta:
            raise InputError("--uncertainty needs --tta (the map comes from the flipped passes).")
        ctx.check_outputs(self.output, self.uncertainty, json=self.json)
        device = ctx.device
        exam = {name: ctx.load(p) if p else None for name, p in self.files().items()}
        seg = segment_tumor(exam["flair"], exam["t1c"], exam["t1"], exam["t2"], model=self.model,
                            device=device, tta=self.tta, click_refine=False if self.no_click_refine else None,
                            progress=ctx.progress, cancel=ctx.cancel, notify=ctx.notify)
        io.save(seg.labels, self.output, overwrite=self.overwrite,
                description=f"tumour labels {seg.provenance.get('model_id', '')} (BraTS 2023)")
        uncertainty = self.uncertainty if seg.uncertainty is not None else None
        if uncertainty:
            io.save(seg.uncertainty, uncertainty, overwrite=self.overwrite, description="TTA uncertainty")
        left_out = seg.provenance.get("regions_left_out", {})
        measurements = tumor_measurements(seg.labels)
        if left_out:  # no T1c: core and enhancing were not segmented, not found absent
            measurements.update(LEFT_OUT)
        report = {"output": str(self.output), "measurements": measurements, "regions_left_out": left_out,
                  "review_slices": seg.review_slices, "notes": seg.notes, "provenance": seg.provenance}
        ctx.write_json(self.json, report)
        files = {"output": self.output, "uncertainty": uncertainty, "json": self.json}
        record = ctx.record(files, self.files(), seg.provenance, measurements=measurements)
        m = measurements
        line = (f"{self.output}: whole tumour {m['whole_tumor_ml']:.1f} mL (no T1c: core, enhancing left out)"
                if left_out else _summary(self.output, m))
        return JobResult({k: Path(v) for k, v in files.items() if v}, record, [line], ctx.warnings,
                         {"model_id": seg.provenance.get("model_id"), "regions_left_out": left_out, **m})


@dataclass(frozen=True, kw_only=True)
class ClickSegmentJob(_TumourExam):
    """BraTS labels 0-3 on FLAIR's grid: the initial labels (or nothing) refined by the clicks, then the
    prompts, in order (`TumourEditor`). New tumour voxels are oedema unless the automatic
    probabilities say core or enhancing. Everything is checked before any file is written."""

    command = "click-segment"
    help = "refine or draw tumour labels from clicks, scribbles, boxes and lassos (BraTS labels 0-3)"

    t1c: str | None = option("--t1c", default=None,
                             help="contrast-enhanced T1 scan (without it --t1 stands in: whole tumour only)")

    fg: list[list[int]] = option("--fg", default=[], parse=voxel_index, action="append",
                                 help="positive click i,j,k (voxel index of FLAIR; repeat)")
    bg: list[list[int]] = option("--bg", default=[], parse=voxel_index, action="append",
                                 help="negative click i,j,k (repeat)")
    prompts: str | None = option(
        "--prompts", default=None,
        help="JSON list of prompts applied in order after the clicks: "
        '{"kind": "click|scribble|box|lasso", "sign": "+|-", "points": [[i, j, k], ...], '
        '"coords": "voxel|mm", "region": "WT|TC|ET", "radius_mm": 1}')
    init: str | None = option(
        "--init", default=None,
        help="label map to refine (BraTS labels 0-3 on FLAIR's grid), or 'auto' to start from the "
        "automatic segmentation (its probabilities kept); default: start from nothing")
    model: str = option("--model", default="brats-tumor-click",
                        help="click model id or card (default: brats-tumor-click)")

    def _run(self, ctx: JobContext) -> JobResult:
        from .. import io
        from ..tasks.click_segment import T1_FOR_T1C, ClickSegmenter, click_t1c_input
        from ..tasks.measure import tumor_measurements
        from ..tasks.tumor import CONTRASTS, prepare_exam, segment_tumor
        from ..tasks.tumor_edit import TumourEditor
        from ..tasks.tumor_prompts import parse_prompt, parse_prompts

        if not self.fg and not self.bg and not self.prompts:
            raise InputError("Give at least one --fg / --bg click or a --prompts file.")
        ctx.check_outputs(self.output, json=self.json)
        device = ctx.device
        files = {"FLAIR": self.flair, "T1c": self.t1c, "T1": self.t1, "T2": self.t2}
        exam = {name: ctx.load(p) if p else None for name, p in files.items()}
        notes: list[str] = []
        vols, present = prepare_exam(exam, notes, require=("FLAIR",))
        t1c_input = click_t1c_input(present)  # T1c, else T1 standing in
        if t1c_input is None:
            raise InputError("Neither T1c nor T1 is given: the click model needs one of them besides FLAIR.")
        if t1c_input != "T1c":
            notes.append(T1_FOR_T1C)
        unused = [name for name in present if name not in ("FLAIR", t1c_input)]
        if unused:
            notes.append(f"The click model uses FLAIR and {t1c_input} only; {'/'.join(unused)} not used.")
        flair, t1c = vols[0], vols[CONTRASTS.index(t1c_input)]
        clicks = [{"kind": "click", "sign": sign, "points": [list(c)]}
                  for sign, group in (("+", self.fg), ("-", self.bg)) for c in group]
        prompts = [parse_prompt(click, flair.shape, flair.affine) for click in clicks]
        if self.prompts:
            prompts += parse_prompts(_read_json(self.prompts), flair.shape, flair.affine)
        init_labels, probabilities, init_prov = None, None, {}
        if self.init == "auto":
            seg = segment_tumor(exam["FLAIR"], exam["T1c"], exam["T1"], exam["T2"], device=device,
                                progress=ctx.progress, cancel=ctx.cancel, notify=ctx.notify)
            init_labels, probabilities, init_prov = seg.labels, seg.probabilities, seg.provenance
        elif self.init:
            init_labels = ctx.load(self.init)  # another grid: the editor refuses it before any network
        for note in notes:
            ctx.notify(note)
        editor = TumourEditor(
            flair, t1c, labels=init_labels, probabilities=probabilities,
            thresholds=(init_prov.get("thresholds") or None), t1c_input=t1c_input,
            # the click model loads on first use
            segmenter=lambda: ClickSegmenter(flair, t1c, model=self.model, device=device,
                                             t1c_input=t1c_input),
        )
        steps = editor.run(prompts)
        segmenter = editor.segmenter_if_made()
        labels = editor.volume()
        prov = dict(labels.meta.get("provenance", {}))
        prov["inputs"] = {"FLAIR": files["FLAIR"], t1c_input: files[t1c_input]}
        prov["click_model_t1c_input"] = t1c_input
        prov["initial_labels"] = "automatic" if self.init == "auto" else (self.init or None)
        if init_prov:
            prov["automatic"] = init_prov
        if segmenter is not None:
            card = segmenter.loaded.card
            prov.update(model_id=card.id, weights_sha256=segmenter.loaded.sha256,
                        intended_use=card.intended_use, license=card.license)
        labels = labels.with_data(labels.data, provenance=prov)
        io.save(labels, self.output, overwrite=self.overwrite, description="tumour labels refined by prompts")
        measurements = tumor_measurements(labels)
        report = {"output": str(self.output), "measurements": measurements, "interactions": steps,
                  "notes": notes, "provenance": prov}
        ctx.write_json(self.json, report)
        inputs = {**self.files(), "init": self.init if self.init not in (None, "auto") else None,
                  "prompts": self.prompts}
        record = ctx.record({"output": self.output, "json": self.json}, inputs, prov,
                            measurements=measurements)
        line = _summary(self.output, measurements, f" after {len(steps)} interactions")
        files_written = {"output": Path(self.output), **({"json": Path(self.json)} if self.json else {})}
        return JobResult(files_written, record, [line], ctx.warnings, measurements)


def _read_json(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}).") from None
