"""Model cards, the registry, safe weight loaders and the architectures the project defines.

Names are loaded lazily: importing `napari_brain_dl.core.models.card` does not import torch.

Example:
    >>> from napari_brain_dl.core.models import list_models, resolve_model, load_model
    >>> [c.id for c in list_models()]  # doctest: +SKIP
    ['mindgrab', 'model21_104class', 'model5_gw_ae']
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "CardError": "card", "LabelInfo": "card", "ModelCard": "card",
    "ArchitectureMismatchError": "meshnet", "HashMismatchError": "loaders", "LoadedModel": "loaders",
    "UntrustedModelError": "loaders", "WeightsError": "loaders", "load_model": "loaders",
    "sha256_file": "loaders", "Registry": "registry", "default_registry": "registry",
    "list_models": "registry", "resolve_model": "registry", "trust": "registry",
    "trusted_hashes": "registry", "BundleError": "bundle",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
