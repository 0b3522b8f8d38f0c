from test_dock_layout import open_everything
def test_x(viewer, data_dir, qtbot):
    from qtpy.QtWidgets import QWidget, QDockWidget
    docks = open_everything(viewer, data_dir, qtbot, (1366, 768))
    def dump(w, depth=0):
        kids = [c for c in w.children() if isinstance(c, QWidget) and not c.isHidden()]
        t = w.text() if hasattr(w, 'text') and callable(w.text) else ''
        if w.minimumSizeHint().width() > 300 or w.minimumWidth() > 300:
            print("  " * depth, type(w).__name__, w.minimumSizeHint().width(), w.minimumWidth(), str(t)[:50])
            for c in kids: dump(c, depth + 1)
    for d in docks:
        if any(k in d.windowTitle() for k in ("Display", "Segment", "Explain", "Load", "Report", "Synth")):
            print("==", d.windowTitle()); dump(d.widget().widget())
