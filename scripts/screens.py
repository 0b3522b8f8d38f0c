"""What the README screenshot scripts share: a 1366x768 napari window with every Brain DL dock open.

A reader's laptop screen is the size the README shows: each script opens all nine widgets
from the plugin manifest (one tabbed dock column, as the Plugins menu does), does its work
with the widgets it needs, brings that tab to the front and saves the whole window.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

SIZE = (1366, 768)
MANIFEST = Path(__file__).resolve().parents[1] / "napari_brain_dl" / "napari.yaml"


def settle(seconds: float = 1.0) -> None:
    """Let Qt process events (deferred display updates, layouts) for `seconds`."""
    from qtpy.QtWidgets import QApplication

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.05)


class Screen:
    """A napari viewer of `size` with every Brain DL widget docked; `widgets` and `docks` by name."""

    def __init__(self, title: str = "napari-brain-dl", size: tuple[int, int] = SIZE) -> None:
        import napari
        from qtpy.QtWidgets import QDockWidget

        from napari_brain_dl._napari.dock_layout import MARK

        self.viewer = napari.Viewer(title=title)
        self.window = self.viewer.window._qt_window
        self.window.resize(*size)
        names = [w["display_name"] for w in yaml.safe_load(MANIFEST.read_text())["contributions"]["widgets"]]
        self.widgets: dict[str, Any] = {}
        for name in names:
            _, self.widgets[name] = self.viewer.window.add_plugin_dock_widget("napari-brain-dl", name)
            settle(0.1)
        self.docks = {d.windowTitle(): d for d in self.window.findChildren(QDockWidget)
                      if d.widget() is not None and d.widget().property(MARK)}

    def front(self, tab: str, scroll_to: Any = None) -> None:
        """Bring `tab` to the front, scrolled so that the magicgui widget `scroll_to` is visible."""
        self.docks[tab].raise_()
        settle(0.3)
        if scroll_to is not None:
            self.docks[tab].widget().ensureWidgetVisible(scroll_to.native, 0, 0)
        settle()

    def shot(self, tab: str, path: Path, scroll_to: Any = None) -> None:
        """Save the whole window with `tab` in front; print its size and the canvas width."""
        from napari._qt.dialogs.qt_notification import NapariQtNotification

        self.front(tab, scroll_to)
        for toast in self.window.findChildren(NapariQtNotification):  # said in the status line too
            toast.close()
        settle(0.3)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.viewer.screenshot(str(path), canvas_only=False, flash=False)
        print(f"{path.name}: window {self.window.width()}x{self.window.height()}, "
              f"canvas {self.viewer.window._qt_viewer.canvas.native.width()} px wide")
