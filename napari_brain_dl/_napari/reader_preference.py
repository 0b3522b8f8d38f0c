"""Make this plugin napari's reader for the scan formats it declares (with the user's consent).

napari asks "Choose reader" whenever two plugins can open a file (here: Brain DL and
napari's builtins for NIfTI). Its answer is kept in napari's settings,
``settings.plugins.extension2reader`` (Preferences > Plugins > "File extension readers",
one row per pattern such as ``*.nii.gz``). `prefer` writes the rows for our formats at once;
the Load exam widget offers it as a button, so nothing changes without the user's click.
"""

from __future__ import annotations

from typing import Any

PLUGIN = "napari-brain-dl"
#: The reader patterns of napari.yaml (DICOM files are left to the user's choice).
PATTERNS = ("*.nii", "*.nii.gz", "*.mgz", "*.mgh", "*.nrrd", "*.nhdr", "*.mha", "*.mhd")


def _settings(settings: Any = None) -> Any:
    if settings is not None:
        return settings
    from napari.settings import get_settings

    return get_settings()


def missing(settings: Any = None) -> list[str]:
    """Patterns that napari does not yet open with this plugin."""
    current = _settings(settings).plugins.extension2reader
    return [p for p in PATTERNS if current.get(p) != PLUGIN]


def prefer(settings: Any = None) -> list[str]:
    """Make this plugin the reader of every pattern in `PATTERNS`; returns the patterns changed."""
    plugins = _settings(settings).plugins
    changed = missing(settings)
    if changed:
        plugins.extension2reader = {**plugins.extension2reader, **dict.fromkeys(changed, PLUGIN)}
    return changed
