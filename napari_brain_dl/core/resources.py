"""Locate the project's own resources (model cards, weights) and the user's folders."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

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
