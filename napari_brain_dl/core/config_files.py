"""Reading YAML and JSON configuration files (model cards, bundle configs) that may be hostile.

Limits: at most `MAX_CONFIG_BYTES`; YAML through the safe loader (no ``!!python`` tags) and
without anchors/aliases, so a "billion laughs" document cannot expand exponentially when the
data is later walked or serialised. Every failure is a `ValueError` with one sentence.
A parsed file is remembered by its content (sha256), so widgets that list the model cards
on every layer change parse each card once; callers get their own copy.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml

MAX_CONFIG_BYTES = 4 * 1024 * 1024  # far above any real card or bundle config
_PARSED: dict[tuple[str, bool], Any] = {}  # (sha256 of the text, json?) -> parsed data
_PARSED_MAX = 256


class _NoAliasLoader(yaml.SafeLoader):
    """The safe loader, refusing aliases (``*name``): configs never need them."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "YAML aliases are not accepted", mark)
        return super().compose_node(parent, index)


def _load_yaml(text: str) -> Any:
    loader = _NoAliasLoader(text)  # a SafeLoader: plain data only
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_config_text(text: str, *, json_format: bool = False, source: str = "the file") -> Any:
    """Parse a YAML (or, with `json_format`, JSON) document within the limits.

    Raises:
        ValueError: Too large, not parseable, a ``!!python`` tag or an alias.

    Example:
        >>> load_config_text("a: [1, 2]")
        {'a': [1, 2]}
    """
    if len(text) > MAX_CONFIG_BYTES:
        raise ValueError(f"{source} is larger than {MAX_CONFIG_BYTES >> 20} MB; not a config file.")
    try:
        return json.loads(text) if json_format else _load_yaml(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source} is not valid JSON ({exc}).") from exc
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValueError(f"{source} is not a plain YAML config ({problem}).") from exc


def load_config_file(path: str | os.PathLike[str]) -> Any:
    """Read a ``.json``, ``.yaml`` or ``.yml`` config file within the limits (see module doc).

    Raises:
        OSError: The file cannot be read.
        ValueError: Too large, not UTF-8, not parseable, or unsafe YAML.
    """
    path = Path(path)
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"{path.name} is larger than {MAX_CONFIG_BYTES >> 20} MB; not a config file.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path.name} is not UTF-8 text.") from exc
    key = (hashlib.sha256(text.encode()).hexdigest(), path.suffix.lower() == ".json")
    if key not in _PARSED:
        data = load_config_text(text, json_format=key[1], source=path.name)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[key] = data
    return copy.deepcopy(_PARSED[key])
