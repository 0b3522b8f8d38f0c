"""Subcommands ``models list | add | trust | remove``: the model cards this user can run.

``skullstrip`` and ``run`` are jobs (`core.jobs.models`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._common import Subparsers


def register(subparsers: Subparsers) -> None:
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


def cmd_models_list(args: argparse.Namespace) -> int:
    """``napari-brain-dl models list [--json]``."""
    from ..core.models.registry import list_models

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
    from ..core.models.registry import default_registry, trust

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
    from ..core.models.registry import resolve_model, trust

    card = resolve_model(args.model)
    digest = trust(card, trusted=not args.revoke)
    print(f"{card.id}: {'no longer trusted' if args.revoke else 'trusted'} (sha256 {digest[:12]}...)")
    return 0


def cmd_models_remove(args: argparse.Namespace) -> int:
    """``napari-brain-dl models remove MODEL``: forget the user folder that holds it."""
    from ..core.models.registry import default_registry

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
