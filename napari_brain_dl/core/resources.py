"""Locate the project's own resources (model cards, weights) and the user's folders."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import platformdirs

PACKAGE = "napari_brain_dl.resources"  # the repository's top-level resources/, packed as package data


def resources_dir() -> Path:
    """The shipped resources folder (holding ``models/``), the same way in every install.

    ``$NAPARI_BRAIN_DL_RESOURCES`` wins; otherwise the package data of `PACKAGE` through
    `importlib.resources` (editable, wheel and ``pip install --target`` installs alike).

    Raises:
        FileNotFoundError: The installation has no shipped resources (a broken install).
    """
    env = os.environ.get("NAPARI_BRAIN_DL_RESOURCES")
    if env:
        return Path(env)
    try:
        folder = Path(str(resources.files(PACKAGE)))
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(f"This installation of napari-brain-dl lacks its {PACKAGE} package data; "
                                "reinstall it.") from exc
    return folder


def user_dir() -> Path:
    """Per-user folder for added models, trust decisions, autosaves and settings (never the install dir).

    ``$NAPARI_BRAIN_DL_HOME`` wins; otherwise the platform's user data folder (platformdirs:
    ``~/.local/share/napari-brain-dl`` or ``$XDG_DATA_HOME/...`` on Linux, ``~/Library/Application
    Support/napari-brain-dl`` on macOS, ``%LOCALAPPDATA%\\napari-brain-dl`` on Windows).
    """
    env = os.environ.get("NAPARI_BRAIN_DL_HOME")
    if env:
        return Path(env)

    return Path(platformdirs.user_data_dir("napari-brain-dl", appauthor=False))


def read_user_settings(name: str) -> dict[str, Any]:
    """The JSON object stored as `name` in `user_dir` (empty when missing or unreadable)."""
    try:
        data = json.loads((user_dir() / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_user_settings(name: str, data: dict[str, Any]) -> Path:
    """Store `data` as `name` in `user_dir`, atomically (a crash never leaves half a file)."""
    path = user_dir() / name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return path
