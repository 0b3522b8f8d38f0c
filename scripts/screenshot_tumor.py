"""Screenshots of the Segment tumour widget with the shipped models on brats_gli_00001.

Run under a virtual display (napari's canvas needs a real GL context)::

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_tumor.py \
        ../shared/data/brats_gli_00001 docs/screenshots

Writes segment_tumor.png (automatic result with TTA, measurements, RANO lines),
refine.png (the Refine panel after one "WT tighter" step) and click_segment.png (three
simulated clicks with the click model).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main(case: Path, out: Path) -> None:
    """Open the exam (copied to a temporary folder so autosaves stay there), run, screenshot."""
    os.environ.setdefault("NAPARI_BRAIN_DL_HOME", tempfile.mkdtemp())
    import napari
    from napari.layers import Layer
    from qtpy.QtWidgets import QApplication

    from napari_brain_dl._napari import display
    from napari_brain_dl._napari.reader import read_paths
    from napari_brain_dl._napari.widgets.segment_tumor import SegmentTumorWidget
    from napari_brain_dl._napari.widgets.tumor_clicks import MASK_LAYER, voxel_to_display
    from napari_brain_dl._napari.widgets.tumor_results import layer_volume
    from napari_brain_dl.core import io
    from napari_brain_dl.core.tasks.click_segment import next_click

    work = Path(tempfile.mkdtemp())
    for name in ("t2f", "t1c", "t1n", "t2w"):
        shutil.copy(case / f"{name}.nii.gz", work / f"{name}.nii.gz")
    viewer = napari.Viewer(title="napari-brain-dl: Segment tumour")
    viewer.window._qt_window.resize(1600, 1000)
    display.install(viewer)
    for name in ("t2w", "t1n", "t1c", "t2f"):
        for data, kwargs, kind in read_paths(str(work / f"{name}.nii.gz")):
            viewer.add_layer(Layer.create(data, kwargs, kind))
    widget = SegmentTumorWidget(viewer)
    dock = viewer.window.add_dock_widget(widget, name="Segment tumour", area="right")
    app = QApplication.instance()

    def settle(seconds: float = 1.0) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.05)

    def wait_idle() -> None:
        while not widget.run_button.enabled:
            settle(0.1)

    widget.flair.value, widget.t1c.value, widget.t1.value, widget.t2.value = "t2f", "t1c", "t1n", "t2w"
    widget.device.value, widget.tta.value = "cpu", True
    start = time.perf_counter()
    widget.run()
    wait_idle()
    print(f"automatic: {time.perf_counter() - start:.1f} s; {widget.status.value}")
    tumor = viewer.layers["tumor"]
    centre = np.argwhere(tumor.data == 3).mean(0)
    viewer.dims.set_point(0, float(tumor.translate[0] + tumor.scale[0] * centre[0]))
    for layer in viewer.layers:
        layer.visible = layer.name in ("t2f", "tumor", "RANO diameters", "orientation letters")
    settle()
    out.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(out / "segment_tumor.png"), canvas_only=False)

    truth = np.asarray(io.load(case / "seg-BraTS23_1.nii.gz").data) > 0

    def wt_dice() -> float:
        wt = np.asarray(layer_volume(viewer.layers[widget.edits.layer.name]).data) > 0
        return 2 * (wt & truth).sum() / (wt.sum() + truth.sum())

    widget.edits.synchronous = True
    widget.edits.boundary("WT", -1)
    settle()
    print(f"WT tighter: Dice {wt_dice():.3f}; {widget.edits.status.value}")
    dock.widget().ensureWidgetVisible(widget.edits.native, 0, 0)
    settle()
    viewer.screenshot(str(out / "refine.png"), canvas_only=False)
    widget.edits.undo()

    tumor.visible = False
    widget.clicks.synchronous, widget.clicks.device = True, "cpu"
    widget.clicks.toggle.value = True
    mask = np.zeros(truth.shape, bool)
    flair_layer = viewer.layers["t2f"]
    for click in range(3):
        voxel, positive = next_click(mask, truth)
        widget.clicks.add_click(voxel_to_display(flair_layer, voxel), positive)
        settle(0.3)
        mask = np.asarray(layer_volume(viewer.layers[MASK_LAYER]).data) > 0
        dice = 2 * (mask & truth).sum() / (mask.sum() + truth.sum())
        print(f"click {click + 1} ({'+' if positive else '-'}): Dice {dice:.3f} against seg-BraTS23_1")
    settle()
    viewer.screenshot(str(out / "click_segment.png"), canvas_only=False)
    print(f"saved {out}/segment_tumor.png, refine.png and click_segment.png")
    viewer.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
