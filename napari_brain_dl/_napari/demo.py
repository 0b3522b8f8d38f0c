"""Open a ready-to-use viewer: sample exam (or given files as one exam) + every dock widget."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution
from importlib.resources import files
from typing import Any

from .. import __name__ as package

PLUGIN = "napari-brain-dl"


def widget_names() -> list[str]:
    """Display names of every dock widget in this plugin's napari.yaml."""
    from npe2 import PluginManifest


    manifest = PluginManifest.from_distribution(PLUGIN) if _installed() else \
        PluginManifest.from_file(_manifest_path(package))
    return [w.display_name for w in manifest.contributions.widgets or []]


def _installed() -> bool:

    try:
        distribution(PLUGIN)
    except PackageNotFoundError:
        return False
    return True


def _manifest_path(package: str) -> str:

    return str(files(package) / "napari.yaml")


def open_viewer(paths: list[str] | None = None, show: bool = True) -> Any:
    """Build the viewer `launch` shows (returned, for tests and scripts).

    Args:
        paths: Series of one exam (files or DICOM folders); empty -> the sample exam.
        show: Show the window.
    """
    import napari
    from napari.layers import Layer

    from . import display
    from .layers import study_to_layer_data

    viewer = napari.Viewer(title="napari-brain-dl", show=show)
    display.install(viewer)
    if paths:
        from ..core.study import load_study

        study = load_study(paths)
        for data, kwargs, kind in study_to_layer_data(study):
            viewer.add_layer(Layer.create(data, kwargs, kind))
    else:
        from .sample_data import brain_exam

        for data, kwargs, kind in brain_exam():
            viewer.add_layer(Layer.create(data, kwargs, kind))
    for name in widget_names():
        viewer.window.add_plugin_dock_widget(PLUGIN, name)
    return viewer


def launch(paths: list[str]) -> None:
    """Open napari with the sample exam, or `paths` loaded as one exam, and every dock widget.

    Example:
        >>> launch(["t1c.nii.gz", "t2f.nii.gz"])  # doctest: +SKIP
    """
    import napari

    open_viewer(paths)
    napari.run()
