"""MONAI bundles: build the network from a bundle config, safely.

Only the pieces the engine needs are instantiated (the network, by default
``network_def``, and whatever it references), through a pruned copy of the
config given to `monai.bundle.ConfigParser`; the bundle's own workflow
(``run``, ``initialize``, data loaders, savers) is never evaluated.

Safety: inside what is instantiated, ``$`` Python expressions, ``%`` macros, every
``_target_`` that is not a network class (a `torch.nn.Module` subclass defined in
``monai.networks`` or ``torch.nn``: functions such as ``monai.utils.misc.run_cmd`` or
``torch.hub.load`` are refused), ``_mode_`` other than the default, ``pretrained`` weights
(a download) and URLs are refused unless the bundle is trusted: checked before anything is
built. Bundles needing code that is not here (their own
``scripts/`` folder, or the separate ``generative`` package) fail with a
message naming it.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import re
from pathlib import Path
from typing import Any

from torch import nn

from ..config_files import load_config_file
from ..errors import InputError
from .card import CardError, ModelCard

ALLOWED_PREFIXES = ("monai.", "torch.")  # where a target name may be looked up at all
NETWORK_MODULES = ("monai.networks.", "torch.nn.")  # where an allowed class must be defined
_COMPONENT_KEYS = {"_target_", "_desc_", "_requires_", "_disabled_", "_mode_"}
_REF = re.compile(r"@([\w#]+)")


class BundleError(InputError):
    """A bundle cannot be used here; the message says what is missing."""


def _read(path: Path) -> dict[str, Any]:

    try:
        data = load_config_file(path)
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path} could not be read ({exc}).") from exc
    if not isinstance(data, dict):
        raise BundleError(f"{path} is not a bundle config (a mapping is expected).")
    return dict(data)


def inference_config(folder: Path) -> Path:
    """The bundle's inference config (configs/inference.json|yaml)."""
    for name in ("inference.json", "inference.yaml", "inference.yml"):
        if (folder / "configs" / name).is_file():
            return folder / "configs" / name
    raise BundleError(f"{folder} has no configs/inference.json: not a MONAI bundle with an inference config.")


def missing_requirements(config: dict[str, Any], folder: Path) -> list[str]:
    """Code the config needs that is not available (its scripts/ folder, the `generative` package)."""
    text = json.dumps(config)
    missing = []
    if (re.search(r"\bscripts\.", text) or "import scripts" in text) and not (folder / "scripts").is_dir():
        targets = sorted(set(re.findall(r"scripts(?:\.\w+)+", text)))
        missing.append(f"the bundle's own scripts/ code ({', '.join(targets[:3])}), not present in {folder}")
    if re.search(r"\bgenerative\.", text) and importlib.util.find_spec("generative") is None:
        missing.append(
            "the separate `generative` package (MONAI GenerativeModels: pip install monai-generative)"
        )
    return missing


def _subtree(config: dict[str, Any], ref: str) -> Any:
    node: Any = config
    for part in ref.split("#"):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def needed_ids(config: dict[str, Any], root: str) -> list[str]:
    """`root` and every config id it references through ``@id``, transitively."""
    seen, todo = [], [root]
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        try:
            node = _subtree(config, ref)
        except (KeyError, IndexError, ValueError) as exc:
            raise BundleError(f"The config refers to @{ref}, which it does not define.") from exc
        seen.append(ref)
        todo.extend(_REF.findall(json.dumps(node)))
    return seen


def unsafe_items(config: dict[str, Any], ids: list[str]) -> list[str]:
    """Expressions, macros and non-allow-listed targets inside the given ids."""
    from monai.bundle.config_item import ComponentLocator

    locator = ComponentLocator()
    problems: list[str] = []

    def visit(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if "_target_" in node:
                problems.extend(f"{where}: {p}" for p in _component_problems(node, locator))
            for key, value in node.items():
                visit(value, f"{where}#{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                visit(value, f"{where}#{i}")
        elif isinstance(node, str) and node.startswith(("$", "%")):
            problems.append(f"{where}: {node[:60]}")

    for ref in ids:
        visit(_subtree(config, ref), ref)
    return problems


def _component_problems(node: dict[str, Any], locator: Any) -> list[str]:
    """Why one ``_target_`` component may not be built from an untrusted config (empty: it may)."""
    target = node["_target_"]
    problems = [] if isinstance(target, str) and _allowed_target(target, locator) else [
        f"_target_ {target} (not a network class)"]
    if node.get("_mode_", "default") != "default":
        problems.append(f"_mode_ {node['_mode_']}")
    problems += [f"key {k}" for k in node if k.startswith("_") and k not in _COMPONENT_KEYS]
    problems += [f"{k}: {v}" for k, v in node.items() if k.lower().startswith("pretrained") and v]
    problems += [f"{k}: URL" for k, v in node.items() if isinstance(v, str) and "://" in v]
    return problems


def _allowed_target(name: str, locator: Any) -> bool:
    """True for a `torch.nn.Module` subclass defined in monai.networks or torch.nn."""

    if "." in name:
        module_name, _, attr = name.rpartition(".")
        candidates = [(module_name, attr)] if name.startswith(ALLOWED_PREFIXES) else []
    else:
        modules = locator.get_component_module_name(name)
        modules = [modules] if isinstance(modules, str) else list(modules or [])
        candidates = [(str(m), name) for m in modules if str(m).startswith(ALLOWED_PREFIXES)]
        if len(candidates) != len(modules):
            return False
    if not candidates:
        return False
    for module_name, attr in candidates:
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError):
            return False
        if not (inspect.isclass(obj) and issubclass(obj, nn.Module)
                and f"{obj.__module__}.".startswith(NETWORK_MODULES)):
            return False
    return True


def check_runnable(card: ModelCard) -> None:
    """Raise `BundleError` naming the code a bundle needs that is not available."""
    if card.folder is None:
        raise BundleError(f"Model {card.id!r}: the bundle folder is unknown.")
    config = _read(card.resolve(card.architecture.get("config", "configs/inference.json")))
    missing = missing_requirements(config, card.folder)
    if missing:
        raise BundleError(
            f"The MONAI bundle {card.folder.name} cannot run here: it needs " + "; and ".join(missing) + "."
        )


def load_bundle(card: ModelCard, trusted: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """Instantiate the bundle network named by the card (random weights; the caller loads weights).

    Raises:
        BundleError: Missing scripts/ or packages, undefined references.
        UntrustedModelError: `$` code or targets outside monai/torch in what would be built.

    Example:
        >>> card = card_from_bundle(Path("monai_bundles/brats_mri_segmentation"))  # doctest: +SKIP
        >>> net, extras = load_bundle(card)  # doctest: +SKIP
        >>> type(net).__name__
        'SegResNet'
    """
    from monai.bundle import ConfigParser

    from .loaders import UntrustedModelError, sha256_file
    from .registry import trusted_hashes

    folder = card.folder
    if folder is None:
        raise BundleError(f"Model {card.id!r}: the bundle folder is unknown.")
    check_runnable(card)
    path = card.resolve(card.architecture.get("config", "configs/inference.json"))
    config = _read(path)
    root = str(card.architecture.get("network", "network_def"))
    ids = needed_ids(config, root)
    problems = unsafe_items(config, ids)
    trusted = trusted or sha256_file(path) in trusted_hashes()
    if problems and not trusted:
        raise UntrustedModelError(
            f"The bundle config {path.name} would run code to build {root!r} ({'; '.join(problems[:3])}); "
            "refused. Only if you know its source: `napari-brain-dl models trust FOLDER` "
            "(or Model manager > Trust)."
        )
    pruned = config if trusted else {ref.split("#")[0]: config[ref.split("#")[0]] for ref in ids}
    parser = ConfigParser(pruned)
    parser["bundle_root"] = str(folder)
    try:
        module = parser.get_parsed_content(root, instantiate=True)
    except Exception as exc:  # monai wraps errors of the target class
        raise BundleError(
            f"Building {root!r} from {path.name} failed: {str(exc).splitlines()[0][:300]}"
        ) from exc
    if not isinstance(module, nn.Module):
        raise BundleError(f"{root!r} in {path.name} is not a torch network ({type(module).__name__}).")
    return module, {"config": str(path)}


def card_from_bundle(folder: str | Path) -> ModelCard:
    """A model card for a bundle folder, from configs/metadata.json and the inference config.

    Inputs come from the metadata's channel definitions (BraTS: T1c, T1, T2, FLAIR);
    intensity steps, the sliding-window inferer and activations from the config.
    """
    folder = Path(folder).resolve()
    config_path = inference_config(folder)
    config = _read(config_path)
    meta_path = folder / "configs" / "metadata.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    fmt = meta.get("network_data_format", {})
    inp = next(iter(fmt.get("inputs", {}).values()), {})
    out = next(iter(fmt.get("outputs", {}).values()), {})
    inputs = [str(v) for _, v in sorted(inp.get("channel_def", {}).items(), key=lambda kv: int(kv[0]))] or [
        "image"
    ] * max(1, int(inp.get("num_channels") or 1))
    channels = [str(v) for _, v in sorted(out.get("channel_def", {}).items(), key=lambda kv: int(kv[0]))]
    pre, post = _steps(config)
    inference: dict[str, Any] = {"mode": "whole", "crop": "head", "margin": 8, "divisible": 8}
    inferer = config.get("inferer")
    if isinstance(inferer, dict) and str(inferer.get("_target_", "")).endswith("SlidingWindowInferer"):
        inference.update(
            mode="sliding_window",
            roi_size=list(inferer.get("roi_size", [96, 96, 96])),
            overlap=float(inferer.get("overlap", 0.25)),
            sw_batch_size=int(inferer.get("sw_batch_size", 1)),
        )
    output: dict[str, Any] = {"kind": "probabilities", "channels": channels}
    if [c.lower() for c in channels] == ["tumor core", "whole tumor", "enhancing tumor"]:
        post.append({"op": "brats_regions", "threshold": 0.5, "enhancing": 4})
        output = {"kind": "labels", "channels": channels}
    weights = folder / "models" / "model.pt"
    data = {
        "id": folder.name,
        "name": meta.get("name", folder.name),
        "task": "segmentation",
        "description": meta.get("description", ""),
        "inputs": inputs,
        "preprocessing": pre,
        "postprocessing": post,
        "output": output,
        "inference": inference,
        "architecture": {
            "type": "monai_bundle",
            "config": str(config_path.relative_to(folder)),
            "network": "network_def",
        },
        "weights": {"file": "models/model.pt"} if weights.is_file() else {},
        "license": "see the bundle's LICENSE",
        "intended_use": meta.get("intended_use") or "Research only, not for diagnosis.",
        "metrics": meta.get("eval_metrics", {}),
        "source": f"MONAI bundle {meta.get('name', folder.name)} v{meta.get('version', '?')}",
    }
    if post and post[-1]["op"] == "brats_regions":
        data["labels"] = {0: "background", 1: "necrotic core", 2: "edema", 4: "enhancing tumour"}
    try:
        card = ModelCard.from_dict(data, folder=folder)
    except CardError as exc:
        raise BundleError(f"{folder.name}: {exc}") from exc
    return card


def _steps(config: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Map the config's common MONAI transforms onto card steps (others are ignored)."""
    pre: list[dict[str, Any]] = []
    post: list[dict[str, Any]] = []
    transforms = (
        (config.get("preprocessing") or {}).get("transforms", [])
        if isinstance(config.get("preprocessing"), dict)
        else []
    )
    for t in transforms:
        name = str(t.get("_target_", "")).rsplit(".", 1)[-1] if isinstance(t, dict) else ""
        if name.startswith("NormalizeIntensity"):
            pre.append({"op": "zscore", "nonzero": bool(t.get("nonzero", False))})
        elif name.startswith("Spacing") and isinstance(t.get("pixdim"), list):
            pre.append({"op": "resample", "spacing": [float(p) for p in t["pixdim"]][:3]})
        elif name.startswith("ScaleIntensityRange"):
            pre.append({"op": "clip", "min": t.get("a_min"), "max": t.get("a_max")})
    postproc = config.get("postprocessing")
    for t in postproc.get("transforms", []) if isinstance(postproc, dict) else []:
        if isinstance(t, dict) and str(t.get("_target_", "")).endswith("Activationsd"):
            if t.get("sigmoid"):
                post.append({"op": "sigmoid"})
            elif t.get("softmax"):
                post.append({"op": "softmax"})
    return pre, post
