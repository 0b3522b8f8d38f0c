"""Command-line subcommands for the model engine: ``models list``, ``skullstrip``, ``run``.

``cli.py`` calls `register(subparsers)`; each handler returns an exit code (the
``EXIT_*`` constants below, documented in ``cli.py``). Outputs are written atomically
by `io.save`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from .core.device_names import DEVICES


def register(subparsers: Any) -> None:
    """Add the model subcommands to an argparse ``add_subparsers()`` object.

    Example:
        >>> parser = argparse.ArgumentParser(prog="napari-brain-dl")
        >>> register(parser.add_subparsers(dest="command"))
        >>> parser.parse_args(["models", "list", "--json"]).json
        True
    """
    models = subparsers.add_parser("models", help="list and manage model cards")
    msub = models.add_subparsers(dest="models_command", required=True)
    lst = msub.add_parser("list", help="list known models (shipped cards and user folders)")
    lst.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lst.set_defaults(func=cmd_models_list)
    add = msub.add_parser("add", help="add a model folder, card or weights file (remembered for this user)")
    add.add_argument("path", help="folder of cards / weights / model folders, a card, or a weights file")
    add.add_argument("--trust", action="store_true",
                     help="also trust its files to run their own code (only if you know their source)")
    add.set_defaults(func=cmd_models_add)
    tru = msub.add_parser("trust", help="let a model's pickle or bundle config run its own code")
    tru.add_argument("model", help="model id, card, weights file or bundle folder")
    tru.add_argument("--revoke", action="store_true", help="take the trust back")
    tru.set_defaults(func=cmd_models_trust)
    rem = msub.add_parser("remove", help="forget a model folder you added (files are not deleted)")
    rem.add_argument("model", help="model id or the folder you added")
    rem.set_defaults(func=cmd_models_remove)

    strip = subparsers.add_parser("skullstrip", help="brain mask on the scan's own grid")
    strip.add_argument("input", help="scan (NIfTI, MGZ, NRRD or DICOM folder)")
    strip.add_argument("output", help="mask file to write (.nii.gz, .nii, .nrrd, .mha)")
    strip.add_argument(
        "--model",
        help="mindgrab card, weights file or model folder; default: template registration (no weights)",
    )
    add_device_option(strip)
    strip.add_argument("--overwrite", action="store_true", help="replace an existing output")
    strip.set_defaults(func=cmd_skullstrip)

    run = subparsers.add_parser("run", help="run any model card on its inputs")
    run.add_argument("--model", required=True, help="card, weights file, model/bundle folder or model id")
    run.add_argument(
        "--input", action="append", required=True, help="input scan; repeat in the card's input order"
    )
    run.add_argument(
        "-o", "--output", required=True, help="output file; several outputs add _<name> before the suffix"
    )
    run.add_argument("--json", help="write provenance (and region volumes) as JSON here")
    add_device_option(run)
    run.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    run.set_defaults(func=cmd_run)


def device_name(text: str) -> str:
    """The argparse type of ``--device``: a known name (``cuda:N`` too), refused when parsed."""
    name = text.strip().lower()
    base, _, index = name.partition(":")
    if base not in DEVICES or (index and not (base == "cuda" and index.isdigit())):
        raise argparse.ArgumentTypeError(f"invalid device {text!r}: choose auto, cpu, cuda, cuda:N or mps")
    return name


def add_device_option(parser: argparse.ArgumentParser, default: str = "auto", note: str = "") -> None:
    """``--device`` for a command that runs a model (its availability is checked before any input is read)."""
    parser.add_argument("--device", type=device_name, default=default,
                        help=f"auto | cpu | cuda[:N] | mps (default {default}){note}")


def write_json(path: str | None, report: dict[str, Any], overwrite: bool) -> None:
    """Write `report` as indented JSON to `path` atomically (nothing when `path` is None)."""
    from .core.io import atomic_output

    if path:
        with atomic_output(path, overwrite=overwrite) as tmp:
            tmp.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")


EXIT_SOME_FAILED = 1  # finished, but a subject failed (batch) or a re-run output differs (rerun)
EXIT_USAGE = 2  # argparse: unknown option, missing argument, invalid choice or device name
EXIT_BAD_INPUT = 3  # a file, model or option value refused: one sentence, nothing written
EXIT_RUNTIME = 4  # the computation failed (out of memory, a device or library error)
EXIT_INTERRUPTED = 130  # Ctrl-C: what was written so far is removed


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    _PENDING.clear()
    sys.stderr.write(f"napari-brain-dl: {message}\n")
    return code


_PENDING: list[str] = []  # scan warnings, printed when the command succeeds


def load_scan(path: str | Path, **kwargs: Any) -> Any:
    """`io.load`, keeping the scan's warnings (NaN voxels, qform/sform conflict, empty) for stderr.

    They are printed by `flush_warnings` once the command has succeeded; a refused command
    prints its one error sentence only (`_fail` drops them).
    """
    from .core import io

    volume = io.load(path, **kwargs)
    _PENDING.extend(f"warning: {Path(path).name}: {w}" for w in volume.warnings)
    return volume


def flush_warnings() -> None:
    """Print the pending scan warnings on stderr (one line each) and forget them."""
    for line in _PENDING:
        sys.stderr.write(line + "\n")
    _PENDING.clear()


def _bad_input_errors() -> tuple[type[BaseException], ...]:
    from .core.io import ImageReadError
    from .core.models.bundle import BundleError
    from .core.models.card import CardError
    from .core.models.loaders import WeightsError
    from .core.models.meshnet import ArchitectureMismatchError

    return (
        FileNotFoundError,
        FileExistsError,
        PermissionError,
        ImageReadError,
        CardError,
        WeightsError,
        ArchitectureMismatchError,
        BundleError,
        ValueError,
        KeyError,
    )


def cmd_models_list(args: argparse.Namespace) -> int:
    """``napari-brain-dl models list [--json]``."""
    from .core.models.registry import list_models

    cards = list_models()
    if args.json:
        print(json.dumps([c.to_dict() for c in cards], indent=2))
        return 0
    print(f"{'id':<22} {'task':<14} {'inputs':<22} {'available':<10} name")
    for c in cards:
        print(
            f"{c.id:<22} {c.task:<14} {','.join(c.inputs):<22} {'yes' if c.available else 'no':<10} {c.name}"
        )
    return 0


def cmd_models_add(args: argparse.Namespace) -> int:
    """``napari-brain-dl models add PATH [--trust]``: remember a folder (a file's own folder)."""
    from .core.models.registry import default_registry, trust

    registry = default_registry()
    path = Path(args.path).expanduser()
    card = None if path.is_dir() else registry.identify(path, remember=True)
    folder = registry.add_folder(path if path.is_dir() else path.resolve().parent)
    cards = [card] if card is not None else registry.cards_in(folder)
    if not cards:
        registry.remove_folder(folder)
        raise ValueError(f"{path} holds no model card or recognised weights; nothing was added.")
    for found in cards:
        line = f"added {found.id} ({found.name})"
        if args.trust:
            line += f", trusted (sha256 {trust(found)[:12]}...)"
        print(line)
    return 0


def cmd_models_trust(args: argparse.Namespace) -> int:
    """``napari-brain-dl models trust MODEL [--revoke]``."""
    from .core.models.registry import resolve_model, trust

    card = resolve_model(args.model)
    digest = trust(card, trusted=not args.revoke)
    print(f"{card.id}: {'no longer trusted' if args.revoke else 'trusted'} (sha256 {digest[:12]}...)")
    return 0


def cmd_models_remove(args: argparse.Namespace) -> int:
    """``napari-brain-dl models remove MODEL``: forget the user folder that holds it."""
    from .core.models.registry import default_registry

    registry = default_registry()
    spec = Path(args.model).expanduser()
    folders = registry.folders()
    if spec.is_dir() and spec.resolve() in folders:
        registry.remove_folder(spec)
        print(f"removed {spec.resolve()} (its files are untouched)")
        return 0
    card = registry.identify(args.model)
    where = card.card_path or card.weights_path
    owner = next((f for f in folders if where is not None and f in Path(where).resolve().parents), None)
    if owner is None:
        raise ValueError(f"{card.id} is not in a folder you added (shipped models cannot be removed).")
    registry.remove_folder(owner)
    print(f"removed {owner} with {card.id} (its files are untouched)")
    return 0


def _check_outputs(paths: list[Path], overwrite: bool) -> None:
    from .core.io import WRITE_SUFFIXES, suffix_of
    from .core.provenance import sidecar_path

    for path in paths:
        if suffix_of(path) not in WRITE_SUFFIXES:
            raise ValueError(f"Cannot write {path.name}: use one of {', '.join(WRITE_SUFFIXES)}.")
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} already exists; pass --overwrite to replace it.")
        if sidecar_path(path).exists() and not overwrite:
            raise FileExistsError(f"{sidecar_path(path)} already exists; pass --overwrite to replace it.")
        if not path.parent.resolve().is_dir():
            raise FileNotFoundError(f"The output folder {path.parent} does not exist.")
        if not os.access(path.parent.resolve(), os.W_OK):
            raise PermissionError(f"The output folder {path.parent} is not writable; nothing was run.")


def cmd_skullstrip(args: argparse.Namespace) -> int:
    """``napari-brain-dl skullstrip IN OUT [--model PATH] [--device D] [--overwrite]``."""
    from .core import io
    from .core.device import choose_device
    from .core.progress import stderr_progress
    from .core.tasks.skullstrip import skullstrip

    try:
        out = Path(args.output)
        _check_outputs([out], args.overwrite)
        choose_device(args.device)
        volume = load_scan(args.input)
        model = None
        if args.model:
            from .core.models.registry import resolve_model

            model = resolve_model(args.model)
        mask = skullstrip(
            volume,
            model,
            device=args.device,
            progress=stderr_progress,
            notify=lambda s: sys.stderr.write(s + "\n"),
        )
        io.save(
            mask, out, overwrite=args.overwrite, description=f"brain mask {mask.meta.get('model_id', '')}"
        )
        from .core.provenance import record_cli_outputs

        record_cli_outputs(args, {"output": out}, {"input": args.input}, mask.meta.get("provenance"))
    except _bad_input_errors() as exc:
        return _fail(_sentence(exc))
    flush_warnings()
    print(f"{out}: brain {float(mask.data.sum()) * volume.voxel_volume_ml:.0f} mL")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """``napari-brain-dl run --model CARD_OR_PATH --input IN [--input IN2 ...] -o OUT [--json J]``."""
    from .core import io
    from .core.device import choose_device
    from .core.io import suffix_of
    from .core.models.registry import resolve_model
    from .core.progress import stderr_progress
    from .core.tasks.parcellate import region_volumes
    from .core.tasks.run_model import run_model

    try:
        card = resolve_model(args.model)
        if len(args.input) != len(card.inputs):
            raise ValueError(
                f"Model {card.id!r} needs {len(card.inputs)} input(s) in this order: "
                f"{', '.join(card.inputs)}; got {len(args.input)}."
            )
        out = Path(args.output)
        _check_outputs([out], args.overwrite)
        choose_device(args.device)
        if args.json and Path(args.json).exists() and not args.overwrite:
            raise FileExistsError(f"{args.json} already exists; pass --overwrite to replace it.")
        volumes = [load_scan(p) for p in args.input]
        pred = run_model(
            card,
            volumes,
            device=args.device,
            progress=stderr_progress,
            notify=lambda s: sys.stderr.write(s + "\n"),
        )
        suffix = suffix_of(out)
        stem = str(out)[: len(str(out)) - len(suffix)]
        targets = {
            name: out if len(pred.outputs) == 1 else Path(f"{stem}_{name}{suffix}") for name in pred.outputs
        }
        _check_outputs(list(targets.values()), args.overwrite)
        for name, vol in pred.outputs.items():
            io.save(vol, targets[name], overwrite=args.overwrite, description=f"{card.id} {name}")
        if args.json:
            report = {"outputs": {k: str(v) for k, v in targets.items()}, "provenance": pred.provenance}
            if card.output_kind == "labels" and "labels" in pred.outputs:
                report["regions"] = region_volumes(pred.outputs["labels"], list(card.labels))
            write_json(args.json, report, args.overwrite)
        from .core.provenance import record_cli_outputs

        files = {("output" if len(targets) == 1 else f"output_{k}"): v for k, v in targets.items()}
        record_cli_outputs(args, {**files, "json": args.json},
                           {f"input{i}": p for i, p in enumerate(args.input)}, pred.provenance)
    except _bad_input_errors() as exc:
        return _fail(_sentence(exc))
    flush_warnings()
    for name, path in targets.items():
        print(f"{path}: {name}")
    return 0


def _sentence(exc: BaseException) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(text.split()) or type(exc).__name__
