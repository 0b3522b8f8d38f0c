"""npe2 reader: NIfTI / MGZ / NRRD files and DICOM folders -> image layers.

Layers are shown axial, radiological, with spacing honoured (see `layers.py`).
A file that cannot be read gives one notification sentence and no layer; the
viewer stays usable.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.io import NIBABEL_SUFFIXES, SITK_SUFFIXES, suffix_of

if TYPE_CHECKING:
    import napari


ReaderFunction = Callable[[Any], list[tuple]]
_SUFFIXES = (*tuple(s for s in NIBABEL_SUFFIXES + SITK_SUFFIXES if s != ".hdr"), ".dcm")


def get_reader(path: str | list[str]) -> ReaderFunction | None:
    """Return `read_paths` when every path looks like a scan, else None (napari tries others).

    Example:
        >>> get_reader("t1c.nii.gz") is read_paths
        True
    """
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths or not all(_looks_like_scan(Path(p)) for p in paths):
        return None
    return read_paths


def _looks_like_scan(path: Path) -> bool:
    if path.is_dir():
        from ..core.dicom import is_dicom_file

        return any(is_dicom_file(p) for p in sorted(path.iterdir())[:20] if p.is_file())
    return suffix_of(path) in _SUFFIXES


def read_paths(path: str | list[str]) -> list[tuple]:
    """Load each path as an image layer data tuple; errors become notifications.

    Returns ``[(None,)]`` (napari's "nothing to add" answer) when nothing could be read.
    """
    from napari.utils.notifications import show_error, show_warning

    from ..core.io import ImageReadError, load
    from .layers import volume_to_layer_data

    paths = [path] if isinstance(path, (str, Path)) else list(path)
    layers = []
    for item in paths:
        try:
            volume = load(item)
        except (FileNotFoundError, ImageReadError, OSError, ValueError) as exc:
            show_error(f"Could not open {Path(item).name}: {exc}")
            continue
        for note in volume.warnings:
            show_warning(f"{volume.name}: {note}")
        layers.append(volume_to_layer_data(volume))
    _install_display(offer_reader=bool(layers))
    return layers or [(None,)]


def _install_display(offer_reader: bool = False) -> None:
    """Give the current viewer the radiology display (orientation, letters, window/level).

    With `offer_reader`, once the layers are in (next event-loop turn), ask the user once
    whether napari should open these formats with Brain DL from now on (`reader_preference`).
    """
    import napari

    from .display import install

    viewer = napari.current_viewer()
    if viewer is None:
        return
    install(viewer)
    if offer_reader:
        from qtpy.QtCore import QTimer

        from . import reader_preference

        if reader_preference.should_ask():
            QTimer.singleShot(0, lambda: _offer_reader(viewer))


def _offer_reader(viewer: napari.viewer.Viewer) -> None:
    """Put the reader question over `viewer`'s window, unless the window closed meanwhile."""
    from . import reader_preference

    try:
        window = getattr(viewer, "__wrapped__", viewer).window._qt_window  # never a plugin proxy
        if window.isVisible():
            reader_preference.offer(window)
    except (AttributeError, RuntimeError):  # the viewer was closed before the question came up
        pass
