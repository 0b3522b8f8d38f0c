"""Screenshots of Segment tumour with the shipped models on brats_gli_00001, at 1366x768.

Run under a virtual display (napari's canvas needs a real GL context)::

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_tumor.py \
        ../shared/data/brats_gli_00001 docs/screenshots

Every Brain DL dock is open (scripts/screens.py). Writes segment_tumor.png (the automatic
result with TTA, RANO lines and the measurements) and refine.png (the Refine panel after one
"WT tighter" step), and prints the whole-tumour Dice of three simulated clicks (the click
screenshot itself is scripts/screenshot_first_hour.py's).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main(case: Path, out: Path) -> None:
    """Load the exam with Load exam, run Segment tumour, refine, click; screenshot."""
    os.environ.setdefault("NAPARI_BRAIN_DL_HOME", tempfile.mkdtemp())  # autosaves stay out of the way
    from screens import Screen, settle

    from napari_brain_dl._napari import reader_preference
    from napari_brain_dl._napari.widgets.tumor_clicks import voxel_to_display
    from napari_brain_dl._napari.widgets.tumor_results import layer_volume
    from napari_brain_dl.core import io
    from napari_brain_dl.core.tasks.click_segment import next_click

    reader_preference.set_asker(lambda parent, reply: None)  # a screenshot never shows the reader question

    screen = Screen(title="napari-brain-dl: Segment tumour")
    viewer, exam, widget = screen.viewer, screen.widgets["Load exam"], screen.widgets["Segment tumour"]
    exam.synchronous = True
    exam.files.value = [case / f"{n}.nii.gz" for n in ("t1c", "t1n", "t2f", "t2w")]
    exam.load()
    settle()
    widget.flair.value, widget.t1c.value, widget.t1.value, widget.t2.value = "flair", "t1c", "t1", "t2"
    widget.device.value, widget.tta.value = "cpu", True
    start = time.perf_counter()
    widget.run()
    while not widget.run_button.enabled:
        settle(0.1)
    print(f"automatic ({widget.model.value}): {time.perf_counter() - start:.1f} s; {widget.status.value}")
    tumor = viewer.layers["tumor"]
    centre = np.argwhere(tumor.data == 3).mean(0)
    viewer.dims.set_point(0, float(tumor.translate[0] + tumor.scale[0] * centre[0]))
    for layer in viewer.layers:
        layer.visible = layer.name in ("flair", "tumor", "RANO diameters")
    viewer.layers.selection.active = tumor
    screen.shot("Segment tumour", out / "segment_tumor.png", scroll_to=widget.results.table)

    truth = np.asarray(io.load(case / "seg-BraTS23_1.nii.gz").data) > 0

    def dice(mask: np.ndarray) -> float:
        return 2 * (mask & truth).sum() / (mask.sum() + truth.sum())

    widget.edits.synchronous = True
    before = dice(np.asarray(layer_volume(tumor).data) > 0)
    widget.edits.boundary("WT", -1)
    after = dice(np.asarray(layer_volume(viewer.layers[widget.edits.layer.name]).data) > 0)
    print(f"WT tighter: Dice {before:.3f} -> {after:.3f}; {widget.edits.status.value}")
    screen.shot("Segment tumour", out / "refine.png", scroll_to=widget.edits)
    widget.edits.undo()

    widget.edits.device = "cpu"
    widget.edits.start_from_nothing()  # clicks from nothing, on a new "tumor (edited)" layer
    widget.edits.tool.value = "click"
    mask = np.zeros(truth.shape, bool)
    flair_layer = viewer.layers["flair"]
    for click in range(3):
        voxel, positive = next_click(mask, truth)
        widget.edits.click(voxel_to_display(flair_layer, voxel), positive)
        settle(0.3)
        mask = np.asarray(layer_volume(widget.edits.layer).data) > 0
        print(f"click {click + 1} ({'+' if positive else '-'}): Dice {dice(mask):.3f} against seg-BraTS23_1")
    viewer.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
