"""Command-line subcommands ``classify`` and ``explain`` (the Explain widget's headless twin).

``classify`` prints the class probabilities (temperature-calibrated as the card says);
``explain`` writes a heatmap on FLAIR's grid (its shape and affine) and, with ``--json``,
the prediction, every check's numbers and verdict, the forward passes used and seconds.
Exit codes as in `cli_models`: 0 success, 3 bad input (one sentence on stderr, nothing written).
"""

from __future__ import annotations

import argparse
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
    """Add ``classify`` and ``explain`` to an argparse ``add_subparsers()`` object."""
    cls = subparsers.add_parser("classify", help="class probabilities of a classification model")
    _common(cls)
    cls.set_defaults(func=cmd_classify)

    exp = subparsers.add_parser("explain", help="heatmap (Grad-CAM / occlusion) with reliability checks")
    _common(exp)
    exp.add_argument(
        "--method",
        default="gradcam",
        choices=["gradcam", "occlusion", "occlusion-brute"],
        help="heatmap method",
    )
    exp.add_argument("-o", "--output", required=True, help="heatmap file (.nii.gz, .nii, .nrrd, .mha)")
    exp.add_argument(
        "--mask", help="reference labels on FLAIR's grid (localisation check; region for seg models)"
    )
    exp.add_argument(
        "--class", dest="target_class", help="class index or name (default: the predicted class)"
    )
    exp.add_argument("--layer", help="Grad-CAM layer (default: the last convolutional block)")
    exp.add_argument(
        "--sign", default="relu", choices=["relu", "abs", "signed"], help="Grad-CAM sign handling"
    )
    exp.add_argument("--no-checks", action="store_true", help="skip randomisation and deletion/insertion")
    exp.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    exp.set_defaults(func=cmd_explain)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flair", required=True, help="FLAIR scan (defines the output grid)")
    parser.add_argument("--t1c", help="contrast-enhanced T1 (optional for tumor-present)")
    parser.add_argument("--model", default="tumor-present", help="model id or card (default: tumor-present)")
    parser.add_argument("--json", help="write the result as JSON here")
    add_device_option(parser, default="cpu")


def cmd_classify(args: argparse.Namespace) -> int:
    """``napari-brain-dl classify --flair F [--t1c F] [--model NAME] [--json J]``."""
    from .core.tasks.classify import classify

    try:
        if args.json and Path(args.json).exists():
            raise FileExistsError(f"{args.json} already exists; choose another name.")
        flair = load_scan(args.flair)
        t1c = load_scan(args.t1c) if args.t1c else None
        result = classify(flair, t1c, model=args.model, device=args.device)
        write_json(args.json, result.to_dict(), False)
    except _bad_input_errors() as exc:
        return _fail(_sentence(exc))
    flush_warnings()
    probs = ", ".join(f"{k} {v:.3f}" for k, v in result.probabilities.items())
    print(f"{args.flair}: {result.predicted} ({probs})")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """``napari-brain-dl explain --flair F [--t1c F] --method M -o HEATMAP [--mask LABELS] [--json J]``."""
    from .core import io
    from .core.progress import stderr_progress
    from .core.tasks.classify import explain

    try:
        _check_outputs([Path(args.output)], args.overwrite)
        if args.json and Path(args.json).exists() and not args.overwrite:
            raise FileExistsError(f"{args.json} already exists; pass --overwrite to replace it.")
        flair = load_scan(args.flair)
        t1c = load_scan(args.t1c) if args.t1c else None
        mask = load_scan(args.mask) if args.mask else None
        result = explain(
            flair,
            t1c,
            model=args.model,
            method=args.method,
            target_class=args.target_class,
            layer=args.layer,
            sign=args.sign,
            mask=mask,
            run_checks=not args.no_checks,
            device=args.device,
            progress=stderr_progress,
        )
        io.save(result.heatmap, args.output, overwrite=args.overwrite, description=f"{args.method} heatmap")
        report = {"output": str(args.output), **result.to_dict()}
        write_json(args.json, report, args.overwrite)
        from .core.provenance import record_cli_outputs

        record_cli_outputs(args, {"output": args.output, "json": args.json},
                           {"flair": args.flair, "t1c": args.t1c, "mask": args.mask}, result.provenance,
                           {"explanation": {k: v for k, v in result.to_dict().items() if k != "provenance"}})
    except _bad_input_errors() as exc:
        return _fail(_sentence(exc))
    flush_warnings()
    for c in result.checks:
        print(f"{c.name}: {c.verdict} ({c.value}) {c.sentence}")
    print(
        f"{args.output}: {result.method} for class {result.target_class}, "
        f"{result.forward_passes} forward passes"
    )
    return 0
