"""Screenshots of a reader's first hour: every Brain DL dock open, at 1366x768 and 1920x1080.

Run under a virtual display at least 1920x1080 (napari's canvas needs a real GL context)::

    xvfb-run -a -s "-screen 0 1920x1080x24" python scripts/screenshot_first_hour.py \
        ../shared/data/brats_gli_00001 docs/screenshots

Opens all nine widgets from the Plugins menu path (one tabbed dock column), loads the exam
with Load exam, clicks on the enhancing rim with the click model (the first click that
crashed in issue 22), and writes:

* ``brats_exam_axial_radiological.png``: 1366x768, the Load exam tab in front;
* ``click_segment.png``: 1366x768, the Segment tumour tab (clicks, legend, measurements);
* ``all_docks_1920x1080.png``: 1920x1080, the same exam with the Explain tab in front.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import yaml


def main(case: Path, out: Path) -> None:
    """Open everything, load, click, and save the three window screenshots."""
    os.environ.setdefault("NAPARI_BRAIN_DL_HOME", tempfile.mkdtemp())  # autosaves stay out of the way
    import napari
    from qtpy.QtWidgets import QApplication, QDockWidget

    from napari_brain_dl._napari.dock_layout import MARK, share_width
    from napari_brain_dl._napari.widgets.tumor_clicks import voxel_to_display

    def settle(seconds: float = 1.0) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            QApplication.processEvents()
            time.sleep(0.05)

    manifest = Path(__file__).resolve().parents[1] / "napari_brain_dl" / "napari.yaml"
    names = [w["display_name"] for w in yaml.safe_load(manifest.read_text())["contributions"]["widgets"]]
    viewer = napari.Viewer(title="napari-brain-dl")
    window = viewer.window._qt_window
    window.resize(1366, 768)
    widgets = {}
    for name in names:
        _, widgets[name] = viewer.window.add_plugin_dock_widget("napari-brain-dl", name)
        settle(0.1)
    exam = widgets["Load exam"]
    exam.synchronous = True
    exam.files.value = [case / f"{n}.nii.gz" for n in ("t1c", "t1n", "t2f", "t2w")]
    exam.load()
    settle()
    docks = {d.windowTitle(): d for d in window.findChildren(QDockWidget)
             if d.widget() is not None and d.widget().property(MARK)}

    def shot(tab: str, file: str) -> None:
        docks[tab].raise_()
        settle()
        viewer.screenshot(str(out / file), canvas_only=False, flash=False)
        print(f"{file}: window {window.width()}x{window.height()}, "
              f"canvas {viewer.window._qt_viewer.canvas.native.width()} px wide")

    out.mkdir(parents=True, exist_ok=True)
    rim = (140, 101, 64)  # enhancing rim of brats_gli_00001: the first click that crashed
    flair = viewer.layers["flair"]
    point = voxel_to_display(flair, rim)
    viewer.dims.set_point(0, float(flair.translate[0] + flair.scale[0] * point[0]))
    viewer.layers.selection.active = flair
    viewer.reset_view()
    shot("Load exam", "brats_exam_axial_radiological.png")
    segment = widgets["Segment tumour"]
    segment.clicks.synchronous, segment.clicks.device = True, "cpu"
    segment.clicks.toggle.value = True
    start = time.perf_counter()
    segment.clicks.add_click(point, True)
    print(f"click on the rim: {time.perf_counter() - start:.2f} s; {segment.clicks.status.value}")
    segment.results.flush()
    docks["Segment tumour"].raise_()
    settle(0.3)
    docks["Segment tumour"].widget().ensureWidgetVisible(segment.results.table.native, 0, 0)  # scrolled
    shot("Segment tumour", "click_segment.png")
    window.resize(1920, 1080)
    settle()
    share_width(window, docks["Explain"])  # the column as a 1920 px window would have it
    viewer.reset_view()
    shot("Explain", "all_docks_1920x1080.png")
    viewer.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
