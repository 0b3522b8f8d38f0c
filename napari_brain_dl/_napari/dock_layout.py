"""One dock area for all Brain DL widgets that fits a 1366x768 screen.

napari stacks every dock widget of one side on top of the others, so the main
window's minimum height is the sum of theirs: five Brain DL widgets made it 2589 px
tall and pushed the buttons and the status bar off a 1000 px screen. `adopt` (called
by each widget) changes that once napari has docked the widget:

* its content goes into a scroll area, so a dock's minimum height is small and a tall
  widget scrolls instead of growing the window;
* it is tabified with the other Brain DL docks of its side (one tab each, the newest
  in front), so they share one column;
* that column is at most `DOCK_WIDTH` px wide, narrower when needed for the canvas to keep
  half of the window beside napari's own layer column.

napari's own API keeps working: the scroll area carries ``_magic_widget`` so
``viewer.window.dock_widgets[name]`` still returns the widget itself.
"""

from __future__ import annotations

from typing import Any

MARK = "brain_dl_dock"
DOCK_WIDTH = 380
MIN_WIDTH = 300
FIELD_MIN = 70
WRAP_LINES = 3  # a status line may wrap into this many lines in the column
OTHER_COLUMN = 320  # napari's layer controls / layer list column once an exam is loaded
MIN_HEIGHT = 160


def adopt(widget: Any) -> None:
    """Fit `widget` (magicgui or Qt) into the shared dock column once napari has docked it."""
    from qtpy.QtCore import QTimer

    native = getattr(widget, "native", widget)
    native.setProperty(MARK, True)
    QTimer.singleShot(0, lambda: fit(widget))


def _dock_of(native: Any) -> Any:
    from qtpy.QtWidgets import QDockWidget

    parent = native.parentWidget() if native is not None else None
    while parent is not None and not isinstance(parent, QDockWidget):
        parent = parent.parentWidget()
    return parent


def _is_ours(dock: Any) -> bool:
    content = dock.widget()
    return bool(content is not None and content.property(MARK))


def fit(widget: Any) -> bool:
    """Scroll area, tab and width for the dock holding `widget`; False when it is not docked."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QDockWidget, QFrame, QMainWindow, QScrollArea, QTabBar

    native = getattr(widget, "native", widget)
    try:
        dock = _dock_of(native)
    except RuntimeError:  # the widget was deleted meanwhile
        return False
    if dock is None or not isinstance(dock.parentWidget(), QMainWindow):
        return False
    main = dock.parentWidget()
    content = dock.widget()
    if not isinstance(content, QScrollArea) or not content.property(MARK):
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setProperty(MARK, True)
        scroll._magic_widget = getattr(content, "_magic_widget", widget)  # napari's inner_widget()
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        dock.setWidget(scroll)
        scroll.setWidget(content)
        scroll.setMinimumHeight(MIN_HEIGHT)
        narrow(content)
    area = main.dockWidgetArea(dock)
    others = [d for d in main.findChildren(QDockWidget)
              if d is not dock and _is_ours(d) and not d.isFloating() and main.dockWidgetArea(d) == area
              and d.toggleViewAction().isChecked()]  # open (shown, or behind another tab)
    if others:
        main.tabifyDockWidget(others[0], dock)
    title = dock.windowTitle().replace(" (napari-brain-dl)", "")
    dock.setWindowTitle(title)  # the tab's text; napari's own records keep the full name
    for bar in main.findChildren(QTabBar):  # full tab names, scroll arrows when they do not fit
        bar.setElideMode(Qt.TextElideMode.ElideNone)
        bar.setUsesScrollButtons(True)
    dock.show()
    dock.raise_()
    share_width(main, dock)
    return True


def share_width(main: Any, dock: Any) -> None:
    """Our column at most `DOCK_WIDTH` px, narrower so the canvas keeps half the window."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QDockWidget

    area = main.dockWidgetArea(dock)
    sides = (Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea)
    others = [d for d in main.findChildren(QDockWidget)
              if d.isVisible() and not d.isFloating() and main.dockWidgetArea(d) != area
              and main.dockWidgetArea(d) in sides]
    other = max([OTHER_COLUMN, *(d.width() for d in others)])  # napari's column widens with layers
    width = max(MIN_WIDTH, min(DOCK_WIDTH, main.width() // 2 - other - 40))
    main.resizeDocks([dock], [width], Qt.Orientation.Horizontal)


def narrow(content: Any) -> None:
    """Let `content` shrink to the column: long combo boxes elide, fields and tables narrow, labels
    wrap, and each form label goes above its field (the label column would take a third)."""
    from qtpy.QtWidgets import (
        QAbstractItemView,
        QAbstractSlider,
        QAbstractSpinBox,
        QBoxLayout,
        QComboBox,
        QHBoxLayout,
        QLabel,
        QLineEdit,
        QWidget,
    )

    for box in content.findChildren(QComboBox):
        box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        box.setMinimumContentsLength(12)
    for kind in (QComboBox, QLineEdit, QAbstractSpinBox, QAbstractSlider, QAbstractItemView):
        for field in content.findChildren(kind):
            field.setMinimumWidth(FIELD_MIN)  # an explicit minimum wins over a long item's size hint
    for label in content.findChildren(QLabel):
        if not label.text() or len(label.text()) > 24:  # status lines and hints, not the short form labels
            label.setWordWrap(True)
            line = max(1, label.fontMetrics().lineSpacing())
            lines = max(WRAP_LINES, label.heightForWidth(DOCK_WIDTH - 100) // line)
            label.setMinimumHeight(lines * line + 4)  # room to wrap into
    for row in content.findChildren(QWidget):  # "label | field" rows: the label above its field
        layout = row.layout()
        if (isinstance(layout, QHBoxLayout) and layout.count() == 2
                and isinstance(layout.itemAt(0).widget(), QLabel) and layout.itemAt(1).widget() is not None):
            label = layout.itemAt(0).widget()
            if not label.text():
                label.hide()  # an empty label only takes room
            label.setMinimumWidth(0)
            label.setMaximumWidth(16777215)
            layout.setDirection(QBoxLayout.Direction.TopToBottom)
            layout.setSpacing(1)
