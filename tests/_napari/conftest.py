"""Viewer fixtures: a real napari viewer (run under Xvfb) with the radiology display."""

from __future__ import annotations

from typing import Any

import pytest


class ReaderQuestion:
    """Stands in for the user asked "open scans with Brain DL?": records each question, answers `reply`."""

    def __init__(self) -> None:
        self.asked = 0
        self.reply = False
        self.parents: list[type] = []  # the parent's class (an instance would outlive its viewer)

    def __call__(self, parent: Any, reply: Any) -> None:
        self.asked += 1
        self.parents.append(type(parent))
        reply(self.reply)


@pytest.fixture(autouse=True)
def reader_question() -> Any:
    """Every viewer test answers the reader question programmatically (never a box on screen)."""
    from napari_brain_dl._napari import reader_preference

    question = ReaderQuestion()
    previous = reader_preference.set_asker(question)
    yield question
    reader_preference.set_asker(previous)


@pytest.fixture
def viewer(make_napari_viewer: Any, qtbot: Any) -> Any:
    """A shown napari viewer with `display.install` applied."""
    from napari_brain_dl._napari import display

    v = make_napari_viewer(show=True)
    v.window._qt_window.resize(1200, 900)
    display.install(v)
    return v


@pytest.fixture
def click_canvas(qtbot: Any) -> Any:
    """A function ``click(viewer, world_point, button=1, shift=False)``: a real Qt mouse click.

    It moves the slider to the point's slice, maps the point to canvas pixels through the
    vispy view transform and sends press + release to the canvas widget, so the click goes
    through napari's mouse callbacks exactly as a person's does.
    """
    import numpy as np
    from qtpy.QtCore import QPoint, Qt

    def click(viewer: Any, world: Any, button: int = 1, shift: bool = False) -> tuple[int, int]:
        world = np.asarray(world, float)
        displayed = list(viewer.dims.displayed)
        for axis in range(viewer.dims.ndim):
            if axis not in displayed:
                viewer.dims.set_point(axis, float(world[axis]))
        canvas = viewer.window._qt_viewer.canvas
        qtbot.wait(10)
        transform = canvas.view.transform * canvas.view.scene.transform
        x, y = transform.map([world[displayed[1]], world[displayed[0]]])[:2]
        pixel = (round(float(x)), round(float(y)))
        qt_button = Qt.MouseButton.LeftButton if button == 1 else Qt.MouseButton.RightButton
        modifier = Qt.KeyboardModifier.ShiftModifier if shift else Qt.KeyboardModifier.NoModifier
        qtbot.mouseClick(canvas._scene_canvas.native, qt_button, modifier, QPoint(*pixel))
        return pixel

    return click
