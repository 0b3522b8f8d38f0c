"""Command-line subcommands for tumours: ``segment`` and ``click-segment`` (interactive protocol, headless).

Both write labels on FLAIR's grid (FLAIR's shape and affine) and, with ``--json``,
volumes in mL and provenance. Exit codes as in `cli_models`: 0 success, 3 bad input
(one sentence on stderr, nothing written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .cli_models import (
    _bad_input_errors,
    _check_outputs,
    _fail,
    _sentence,
    add_device_option,
    flush_warnings,
    load_scan,
    write_json,
)


def register(subparsers: Any) -> None:
    """Add ``segment`` and ``click-segment`` to an argparse ``add_subparsers()`` object."""
    seg = subparsers.add_parser(
        "segment", help="automatic brain-tumour segmentation (BraTS 2023 labels); FLAIR and/or T1c"
    )
    _exam_arguments(seg, required=False)
    seg.add_argument("--model", default="brats-tumor-seg", help="model id or card (default: brats-tumor-seg)")
    seg.add_argument("--tta", action="store_true", help="4 flipped passes: uncertainty and slices to review")
    seg.add_argument("--uncertainty", help="with --tta: also write the uncertainty map here")
    seg.set_defaults(func=cmd_segment)

    click = subparsers.add_parser(
        "click-segment",
        help="refine or draw tumour labels from clicks, scribbles, boxes and lassos (BraTS labels 0-3)",
    )
    _exam_arguments(click, required=True)
    click.add_argument("--fg", action="append", default=[], type=_index,
                       help="positive click i,j,k (voxel index of FLAIR; repeat)")
    click.add_argument("--bg", action="append", default=[], type=_index, help="negative click i,j,k (repeat)")
    click.add_argument(
        "--prompts",
        help="JSON list of prompts applied in order after the clicks: "
        '{"kind": "click|scribble|box|lasso", "sign": "+|-", "points": [[i, j, k], ...], '
        '"coords": "voxel|mm", "region": "WT|TC|ET", "radius_mm": 1}',
    )
    click.add_argument(
        "--init",
        help="label map to refine (BraTS labels 0-3 on FLAIR's grid), or 'auto' to start from the "
        "automatic segmentation (its probabilities kept); default: start from nothing",
    )
    click.add_argument(
        "--model", default="brats-tumor-click", help="click model id or card (default: brats-tumor-click)"
    )
    click.set_defaults(func=cmd_click_segment)


def _exam_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    either = "" if required else "; FLAIR or T1c, or both"
    parser.add_argument("--flair", required=required, help=f"FLAIR scan (defines the output grid{either})")
    parser.add_argument("--t1c", required=required,
                        help="contrast-enhanced T1 scan" + ("" if required else
                                                           " (without it only the whole tumour is given)"))
    parser.add_argument("--t1", help="native T1 scan (optional)")
    parser.add_argument("--t2", help="T2 scan (optional)")
    parser.add_argument(
        "-o", "--output", required=True, help="label file to write (.nii.gz, .nii, .nrrd, .mha)"
    )
    parser.add_argument("--json", help="write volumes (mL) and provenance as JSON here")
    add_device_option(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def _index(text: str) -> tuple[int, int, int]:
    parts = text.replace(" ", "").split(",")
    if len(parts) != 3 or not all(p.lstrip("-").isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a voxel index i,j,k (three integers).")
    return (int(parts[0]), int(parts[1]), int(parts[2]))


def _load_exam(args: argparse.Namespace) -> dict[str, Any]:
    return {
        name: load_scan(p) if p else None
        for name, p in (("FLAIR", args.flair), ("T1c", args.t1c), ("T1", args.t1), ("T2", args.t2))
    }


def _exam_files(args: argparse.Namespace) -> dict[str, str | None]:
    return {"flair": args.flair, "t1c": args.t1c, "t1": args.t1, "t2": args.t2}


def _outputs(args: argparse.Namespace, *extra: str | None) -> list[Path]:
    paths = [Path(args.output)] + [Path(p) for p in extra if p]
    _check_outputs(paths, args.overwrite)
    if args.json and Path(args.json).exists() and not args.overwrite:
        raise FileExistsError(f"{args.json} already exists; pass --overwrite to replace it.")
    return paths


def _notify(text: str) -> None:
    sys.stderr.write(text + "\n")


def cmd_segment(args: argparse.Namespace) -> int:
    """``napari-brain-dl segment [--flair F] [--t1c F] [--t1 F] [--t2 F] -o OUT [--json J] [--tta]``.

    FLAIR or T1c (or both) is needed; without T1c the labels hold the whole tumour only and the
    JSON's ``regions_left_out`` says why (its tumour-core and enhancing volumes are null).
    """
    from .core import io
    from .core.device import choose_device
    from .core.progress import stderr_progress
    from .core.tasks.measure import tumor_measurements
    from .core.tasks.tumor import segment_tumor

    try:
        if not args.flair and not args.t1c:
            raise ValueError("Give --flair or --t1c: tumour segmentation needs at least one of them.")
        if args.uncertainty and not args.tta:
            raise ValueError("--uncertainty needs --tta (the map comes from the flipped passes).")
        _outputs(args, args.uncertainty)
        choose_device(args.device)
        exam = _load_exam(args)
        seg = segment_tumor(
            exam["FLAIR"],
            exam["T1c"],
            exam["T1"],
            exam["T2"],
            model=args.model,
            device=args.device,
            tta=args.tta,
            progress=stderr_progress,
            notify=_notify,
        )
        io.save(
            seg.labels,
            args.output,
            overwrite=args.overwrite,
            description=f"tumour labels {seg.provenance.get('model_id', '')} (BraTS 2023)",
        )
        if seg.uncertainty is not None and args.uncertainty:
            io.save(
                seg.uncertainty, args.uncertainty, overwrite=args.overwrite, description="TTA uncertainty"
            )
        left_out = seg.provenance.get("regions_left_out", {})
        measurements = tumor_measurements(seg.labels)
        if left_out:  # no T1c: core and enhancing were not segmented, not found absent
            measurements.update(necrotic_core_ml=None, tumor_core_ml=None, enhancing_ml=None,
                                edema_ml=None, lesions=[], measurable_lesions=None, sum_of_products_mm2=None)
        report = {
            "output": str(args.output),
            "measurements": measurements,
            "regions_left_out": left_out,
            "review_slices": seg.review_slices,
            "notes": seg.notes,
            "provenance": seg.provenance,
        }
        write_json(args.json, report, args.overwrite)
        from .core.provenance import record_cli_outputs

        unc = args.uncertainty if seg.uncertainty is not None else None
        record_cli_outputs(args, {"output": args.output, "uncertainty": unc, "json": args.json},
                           _exam_files(args), seg.provenance, {"measurements": report["measurements"]})
    except _bad_input_errors() as exc:
        return _fail(_sentence(exc))
    flush_warnings()
    m = report["measurements"]
    if report["regions_left_out"]:
        print(f"{args.output}: whole tumour {m['whole_tumor_ml']:.1f} mL (no T1c: core, enhancing left out)")
        return 0
    print(
        f"{args.output}: whole tumour {m['whole_tumor_ml']:.1f} mL, tumour core {m['tumor_core_ml']:.1f} mL, "
        f"enhancing {m['enhancing_ml']:.1f} mL"
    )
    return 0


def cmd_click_segment(args: argparse.Namespace) -> int:
    """``napari-brain-dl click-segment --flair F --t1c F [--fg i,j,k] [--bg i,j,k] [--prompts P.json]
    [--init LABELS|auto] -o OUT [--json J]``.

    Writes BraTS labels 0-3 on FLAIR's grid: the initial labels (or nothing) refined by the
    clicks, then the prompts, in order (`TumourEditor`); new tumour voxels are edema unless
    the automatic probabilities say core or enhancing. Everything is checked before any file
    is written.
    """
    import json

    from .core import io
    from .core.device import choose_device
    from .core.tasks.click_segment import ClickSegmenter
    from .core.tasks.measure import tumor_measurements
    from .core.tasks.tumor import prepare_exam
    from .core.tasks.tumor_edit import TumourEditor
    from .core.tasks.tumor_prompts import parse_prompt, parse_prompts

    try:
        if not args.fg and not args.bg and not args.prompts:
            raise ValueError("Give at least one --fg / --bg click or a --prompts file.")
        _outputs(args)
        choose_device(args.device)
        exam = _load_exam(args)
        notes: list[str] = []
        vols, present = prepare_exam(exam, notes, require=("FLAIR", "T1c"))
        if {"T1", "T2"} & set(present):
            notes.append("The click model uses FLAIR and T1c only; T1/T2 were not used.")
        flair, t1c = vols[0], vols[1]
        prompts = [parse_prompt({"kind": "click", "sign": sign, "points": [list(c)]}, flair.shape,
                                flair.affine)
                   for sign, group in (("+", args.fg), ("-", args.bg)) for c in group]
        if args.prompts:
            try:
                items = json.loads(Path(args.prompts).read_text())
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"{args.prompts} is not valid JSON ({exc.msg} at line {exc.lineno})."
                ) from None
            prompts += parse_prompts(items, flair.shape, flair.affine)
        init_labels, probabilities, init_prov = None, None, {}
        if args.init == "auto":
            from .core.progress import stderr_progress
            from .core.tasks.tumor import segment_tumor

            seg = segment_tumor(exam["FLAIR"], exam["T1c"], exam["T1"], exam["T2"], device=args.device,
                                progress=stderr_progress, notify=_notify)
            init_labels, probabilities, init_prov = seg.labels, seg.probabilities, seg.provenance
        elif args.init:
            init_labels = load_scan(args.init)  # another grid: the editor refuses it before any network
        for note in notes:
            _notify(note)
        editor = TumourEditor(
            flair, t1c, labels=init_labels, probabilities=probabilities,
            thresholds=(init_prov.get("thresholds") or None),
            # the click model loads on first use
            segmenter=lambda: ClickSegmenter(flair, t1c, model=args.model, device=args.device),
        )
        steps = editor.run(prompts)
        segmenter = editor.segmenter_if_made()
        labels = editor.volume()
        prov = dict(labels.meta.get("provenance", {}))
        prov["inputs"] = {"FLAIR": args.flair, "T1c": args.t1c}
        prov["initial_labels"] = "automatic" if args.init == "auto" else (args.init or None)
        if init_prov:
            prov["automatic"] = init_prov
        if segmenter is not None:
            card = segmenter.loaded.card
            prov.update(model_id=card.id, weights_sha256=segmenter.loaded.sha256,
                        intended_use=card.intended_use, license=card.license)
        labels = labels.with_data(labels.data, provenance=prov)
        io.save(labels, args.output, overwrite=args.overwrite, description="tumour labels refined by prompts")
        measurements = tumor_measurements(labels)
        report = {
            "output": str(args.output),
            "measurements": measurements,
            "interactions": steps,
            "notes": notes,
            "provenance": prov,
        }
        write_json(args.json, report, args.overwrite)
        from .core.provenance import record_cli_outputs

        inputs = {**_exam_files(args), "init": args.init if args.init not in (None, "auto") else None,
                  "prompts": args.prompts}
        record_cli_outputs(args, {"output": args.output, "json": args.json}, inputs, prov,
                           {"measurements": measurements})
    except _bad_input_errors() as exc:
        return _fail(_sentence(exc))
    flush_warnings()
    m = measurements
    print(f"{args.output}: whole tumour {m['whole_tumor_ml']:.1f} mL, "
          f"tumour core {m['tumor_core_ml']:.1f} mL, enhancing {m['enhancing_ml']:.1f} mL "
          f"after {len(steps)} interactions")
    return 0
