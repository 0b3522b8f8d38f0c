"""Viewer fixtures: a real napari viewer (run under Xvfb) with the radiology display."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def viewer(make_napari_viewer: Any, qtbot: Any) -> Any:
    """A shown napari viewer with `display.install` applied."""
    from napari_brain_dl._napari import display

    v = make_napari_viewer(show=True)
    v.window._qt_window.resize(1200, 900)
    display.install(v)
    return v
