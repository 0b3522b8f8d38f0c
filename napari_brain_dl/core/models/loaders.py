"""Load model weights safely and build the network a card describes.

Formats are told apart by their bytes, never by the file name:

- safetensors: 8-byte little-endian header length, then a JSON header;
- TorchScript: a zip archive holding ``constants.pkl`` / ``code/``;
- torch.save state_dict: a zip archive holding ``data.pkl`` (or a legacy pickle).

``torch.load`` is always called with ``weights_only=True``. A pickle that needs
classes beyond tensors (a whole pickled module, or worse, code) is refused
unless the model is trusted; even then only the globals the file names are
allowed, and process/shell/eval functions never are.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import InputError
from ..hashing import file_sha256
from ..resources import resources_dir
from .card import ModelCard
from .meshnet import ArchitectureMismatchError, MeshNet, load_meshnet_state, spec_from_dict, spec_from_json


class WeightsError(InputError):
    """Weights are missing, unreadable, truncated or of an unknown format."""


class HashMismatchError(WeightsError):
    """The weights file is not the one the card names (sha256 differs)."""


class UntrustedModelError(WeightsError):
    """Loading would run code from the file or config, and the model is not trusted."""


__all__ = [
    "ArchitectureMismatchError",
    "HashMismatchError",
    "LoadedModel",
    "UntrustedModelError",
    "WeightsError",
    "detect_format",
    "load_model",
    "read_state_dict",
    "sha256_file",
]

_NEVER_ALLOWED = (
    "os.",
    "posix.",
    "nt.",
    "subprocess.",
    "sys.",
    "builtins.",
    "shutil.",
    "socket.",
    "importlib.",
    "runpy.",
    "pty.",
    "code.",
    "ctypes.",
)


@dataclass
class LoadedModel:
    """A network ready to run, with what the engine needs to know about it.

    Attributes:
        card: The model card.
        module: The torch module (eval mode) or TorchScript module.
        sha256: sha256 of the weights file (None for random weights).
        kind: meshnet | torchscript | monai | monai_bundle | project.
        device: Device the module sits on.
        extras: Kind-specific settings (e.g. a bundle's inferer parameters).
    """

    card: ModelCard
    module: nn.Module
    sha256: str | None
    kind: str
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    extras: dict[str, Any] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> LoadedModel:
        """Move the module to `device` (in place) and return self (only for a model nobody shares)."""
        self.device = torch.device(device)
        self.module.to(self.device)
        return self

    def on(self, device: torch.device | str) -> LoadedModel:
        """This model on `device`: itself when it is there already, else a copy moved there.

        The engine's fallbacks (out of memory on the GPU -> CPU) use this, so a cached model
        never changes device under the cache's key.
        """
        device = torch.device(device)
        if device == self.device:
            return self
        module = copy.deepcopy(self.module).to(device)  # the weights are MBs; activations ran out
        return replace(self, module=module, device=device, extras=dict(self.extras))


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file (cached by path, size and modification time).

    Example:
        >>> sha256_file("mindgrab/model.pth")[:12]  # doctest: +SKIP
        '31f1bda17b8d'
    """

    return file_sha256(Path(path))


def detect_format(path: str | Path) -> str:
    """Tell the weights format from the file's content.

    Returns:
        "safetensors", "torchscript", "torch_zip", "torch_legacy" or "unknown".

    Example:
        >>> detect_format("model21_104class/model.pth")  # doctest: +SKIP
        'safetensors'
    """
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(16)
    size = path.stat().st_size
    if len(head) >= 9:
        (n,) = struct.unpack("<Q", head[:8])
        if 2 <= n <= size - 8 and head[8:9] == b"{":
            return "safetensors"
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError):
            return "torch_zip"  # let torch.load report the truncation
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
        return "torch_zip"
    if head[:1] == b"\x80":
        return "torch_legacy"
    return "unknown"


def read_state_dict(path: str | Path, *, trusted: bool = False) -> dict[str, torch.Tensor]:
    """Read tensors from a safetensors or torch.save file, safely.

    Args:
        path: The weights file (any extension).
        trusted: Allow a pickle that names classes besides tensors (its own globals only).

    Raises:
        WeightsError: Unknown format, truncated or corrupt file.
        UntrustedModelError: The pickle needs code and the model is not trusted.

    Example:
        >>> sd = read_state_dict("mindgrab/model.pth")  # doctest: +SKIP
        >>> sd["model.0.0.weight"].shape
        torch.Size([15, 1, 3, 3, 3])
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"The weights file {path} does not exist.")
    fmt = detect_format(path)
    if fmt == "safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as exc:
            raise WeightsError(f"{path.name} is a truncated or corrupt safetensors file ({exc}).") from exc
    if fmt == "torchscript":
        raise WeightsError(
            f"{path.name} is a TorchScript model, not a state_dict; use architecture type 'torchscript'."
        )
    if fmt == "unknown":
        raise WeightsError(f"{path.name} is not a PyTorch, TorchScript or safetensors file.")
    obj = _torch_load(path, trusted)
    return _as_state_dict(obj, path)


def _load_bytes(path: Path) -> Any:
    # A file object, not a name: torch.load must not pick a reader from the extension.
    with open(path, "rb") as fh:
        return torch.load(fh, map_location="cpu", weights_only=True)


def _torch_load(path: Path, trusted: bool) -> Any:
    try:
        return _load_bytes(path)
    except pickle.UnpicklingError as exc:
        if "weights only" not in str(exc).lower() and "weights_only" not in str(exc).lower():
            raise WeightsError(f"{path.name} is truncated or corrupt ({_first_line(exc)}).") from exc
        needed = _unsafe_globals(path)
        if not trusted:
            raise UntrustedModelError(
                f"{path.name} is a full pickle that would import and run code "
                f"({', '.join(needed[:4]) or 'unknown'})"
                "; it was not loaded. Only if you know its source: `napari-brain-dl models trust FILE` "
                "(or Model manager > Trust)."
            ) from exc
        banned = [g for g in needed if g.startswith(_NEVER_ALLOWED) or g.split(".")[0] in ("eval", "exec")]
        if banned:
            raise UntrustedModelError(
                f"{path.name} calls {', '.join(banned)}: refused even though trusted."
            ) from exc
        allowed = [_import_global(g) for g in needed]
        with torch.serialization.safe_globals(allowed):
            return _load_bytes(path)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, struct.error) as exc:
        raise WeightsError(f"{path.name} is truncated or corrupt ({_first_line(exc)}).") from exc


def _unsafe_globals(path: Path) -> list[str]:
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # legacy pickles are not inspectable this way
        return []


def _import_global(name: str) -> Any:

    module, _, attr = name.rpartition(".")
    obj: Any = importlib.import_module(module)
    return getattr(obj, attr)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _as_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "network", "net", "model_state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
        tensors = {str(k).removeprefix("module."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise WeightsError(f"{path.name} holds no tensors (found {type(obj).__name__}).")


def check_hash(card: ModelCard, path: Path) -> str:
    """Return the file's sha256, refusing it when it differs from the card's."""
    digest = sha256_file(path)
    if card.sha256 and digest != card.sha256:
        raise HashMismatchError(
            f"{path.name} does not match model {card.id!r}: its sha256 is {digest[:16]}..., the card expects "
            f"{card.sha256[:16]}.... It is another model or a damaged copy; it was not loaded."
        )
    return digest


def trusted_by_package(card: ModelCard) -> bool:
    """The card says ``trusted: true`` and ships with the package (its author is this project).

    A card elsewhere saying ``trusted: true`` is a file vouching for itself: it is ignored.
    """

    shipped = card.folder is not None and card.folder.is_relative_to((resources_dir() / "models").resolve())
    return card.trusted and shipped


def is_trusted(card: ModelCard, digest: str | None) -> bool:
    """Trusted by the user's stored decision (weights `digest`), or by a card shipped with the package."""
    from .registry import trusted_hashes

    return trusted_by_package(card) or (digest is not None and digest in trusted_hashes())


def build_module(card: ModelCard) -> nn.Module:
    """Instantiate the card's architecture with random weights."""
    arch = card.architecture
    kind = arch["type"]
    if kind == "meshnet":
        spec = spec_from_json(card.resolve(arch["config"])) if arch.get("config") else spec_from_dict(arch)
        return MeshNet(spec)
    if kind == "monai":
        import monai.networks.nets as nets

        name = str(arch.get("name", ""))
        if not name.isidentifier() or not hasattr(nets, name):
            raise WeightsError(f"monai.networks.nets has no network called {name!r}.")
        return getattr(nets, name)(**dict(arch.get("args") or {}))
    if kind == "project":
        from . import classifier, meshnet, unet

        builders = {"meshnet": lambda a: meshnet.MeshNet(spec_from_dict(a)), "unet": unet.build_unet}
        builders["classifier"] = classifier.build_classifier
        if arch.get("name") not in builders:
            raise WeightsError(f"Unknown project architecture {arch.get('name')!r}.")
        try:
            return builders[arch["name"]](arch)
        except (KeyError, TypeError, ValueError) as exc:
            reason = _first_line(exc)
            raise WeightsError(f"The card's {arch['name']} architecture is invalid ({reason}).") from exc
    raise WeightsError(f"Architecture type {kind!r} cannot be built from a description.")


def load_state_into(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load `state` strictly, naming every mismatching tensor."""
    if isinstance(module, MeshNet):
        load_meshnet_state(module, state, source)
        return
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs architecture {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append("shape differs for " + "; ".join(shapes[:6]))
        if missing:
            parts.append("missing " + ", ".join(missing[:6]) + (" ..." if len(missing) > 6 else ""))
        if unexpected:
            parts.append("unexpected " + ", ".join(unexpected[:6]) + (" ..." if len(unexpected) > 6 else ""))
        raise ArchitectureMismatchError(
            f"The {source} do not match the architecture: " + "; ".join(parts) + "."
        )
    module.load_state_dict(state, strict=True)


def load_model(
    card: ModelCard,
    device: str | torch.device = "cpu",
    *,
    trusted: bool | None = None,
    allow_random_weights: bool = False,
) -> LoadedModel:
    """Build the card's network and load its weights (hash checked first).

    Args:
        card: Model card (its `weights_path` set, or `allow_random_weights`).
        device: Torch device to place the model on.
        trusted: Override the stored trust decision (None: card or user settings).
        allow_random_weights: Run with random weights when none are given (tests, demos).

    Raises:
        WeightsError, HashMismatchError, UntrustedModelError, ArchitectureMismatchError.

    Example:
        >>> card = resolve_model("/data/brainchop_models/mindgrab")  # doctest: +SKIP
        >>> model = load_model(card)  # doctest: +SKIP
        >>> model.kind, model.sha256[:8]  # doctest: +SKIP
        ('meshnet', '31f1bda1')
    """
    kind = card.architecture["type"]
    path = card.weights_path
    digest: str | None = None
    if kind == "monai_bundle":  # missing scripts/ or packages are the first thing to say
        from .bundle import check_runnable

        check_runnable(card)
    if path is not None:
        if not Path(path).is_file():
            raise WeightsError(f"The weights file {path} for model {card.id!r} does not exist.")
        digest = check_hash(card, Path(path))
    elif not allow_random_weights:
        raise WeightsError(
            f"Model {card.id!r} has no weights file; point to the file "
            f"({card.weights.get('file', 'weights')})."
        )
    ok = is_trusted(card, digest) if trusted is None else trusted
    extras: dict[str, Any] = {}
    if kind == "monai_bundle":
        from .bundle import load_bundle

        module, extras = load_bundle(card, trusted=ok)
        if path is not None:
            load_state_into(module, read_state_dict(path, trusted=ok), f"weights in {Path(path).name}")
    elif kind == "torchscript":
        if path is None:
            raise WeightsError(f"Model {card.id!r}: a TorchScript model needs its file.")
        if detect_format(path) != "torchscript":
            raise WeightsError(f"{Path(path).name} is not a TorchScript archive.")
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except (RuntimeError, OSError, ValueError) as exc:
            raise WeightsError(f"{Path(path).name} is truncated or corrupt ({_first_line(exc)}).") from exc
    else:
        module = build_module(card)
        if path is not None:
            state = read_state_dict(path, trusted=ok)
            load_state_into(module, state, f"weights in {Path(path).name}")
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return LoadedModel(card, module, digest, kind, extras=extras).to(device)


def threads_hint() -> int:
    """CPU threads torch should use (all cores this process may run on)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
