"""Locate the project's own resources (model cards, weights) and the user's folders."""

from __future__ import annotations

import os
import site
import sys
from pathlib import Path

_REPO_RESOURCES = Path(__file__).resolve().parents[2] / "resources"


def resources_dir() -> Path:
    """The shipped resources folder, for an editable install or a wheel.

    Order: $NAPARI_BRAIN_DL_RESOURCES, the repository's resources/ (editable
    install), then <prefix>/share/napari-brain-dl/resources (wheel install).
    """
    candidates = [os.environ.get("NAPARI_BRAIN_DL_RESOURCES", ""), str(_REPO_RESOURCES),
                  os.path.join(sys.prefix, "share", "napari-brain-dl", "resources"),
                  os.path.join(site.getuserbase(), "share", "napari-brain-dl", "resources")]
    for candidate in candidates:
        if candidate and Path(candidate, "models").is_dir():
            return Path(candidate)
    return _REPO_RESOURCES


def user_dir() -> Path:
    """Per-user folder for added models, trust decisions and settings (never the install dir).

    $NAPARI_BRAIN_DL_HOME wins; otherwise $XDG_DATA_HOME/napari-brain-dl or ~/.local/share/napari-brain-dl.
    """
    env = os.environ.get("NAPARI_BRAIN_DL_HOME")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "napari-brain-dl"
