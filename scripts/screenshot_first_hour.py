"""Screenshots of a reader's first hour: every Brain DL dock open, at 1366x768 and 1920x1080.

Run under a virtual display at least 1920x1080 (napari's canvas needs a real GL context)::

    xvfb-run -a -s "-screen 0 1920x1080x24" python scripts/screenshot_first_hour.py \
        ../shared/data/brats_gli_00001 docs/screenshots

Opens all nine widgets from the Plugins menu path (one tabbed dock column), loads the exam
with Load exam, clicks on the enhancing rim with the click model (the first click that
crashed in issue 22), and writes:

* ``brats_exam_axial_radiological.png``: 1366x768, the Load exam tab in front;
* ``click_segment.png``: 1366x768, the Segment tumour tab (Refine with its click tool, the click);
* ``all_docks_1920x1080.png``: 1920x1080, the same exam with the Explain tab in front.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path


def main(case: Path, out: Path) -> None:
    """Open everything, load, click, and save the three window screenshots."""
    os.environ.setdefault("NAPARI_BRAIN_DL_HOME", tempfile.mkdtemp())  # autosaves stay out of the way
    from screens import Screen, settle

    from napari_brain_dl._napari import reader_preference
    from napari_brain_dl._napari.dock_layout import share_width
    from napari_brain_dl._napari.widgets.tumor_clicks import voxel_to_display

    reader_preference.set_asker(lambda parent, reply: None)  # a screenshot never shows the reader question

    screen = Screen()
    viewer, widgets = screen.viewer, screen.widgets
    exam = widgets["Load exam"]
    exam.synchronous = True
    exam.files.value = [case / f"{n}.nii.gz" for n in ("t1c", "t1n", "t2f", "t2w")]
    exam.load()
    settle()
    rim = (140, 101, 64)  # enhancing rim of brats_gli_00001: the first click that crashed
    flair = viewer.layers["flair"]
    point = voxel_to_display(flair, rim)
    viewer.dims.set_point(0, float(flair.translate[0] + flair.scale[0] * point[0]))
    viewer.layers.selection.active = flair
    viewer.reset_view()
    screen.shot("Load exam", out / "brats_exam_axial_radiological.png")
    segment = widgets["Segment tumour"]
    segment.edits.synchronous, segment.edits.device = True, "cpu"
    segment.edits.tool.value = "click"  # no result yet: Refine starts from nothing
    start = time.perf_counter()
    segment.edits.click(point, True)
    print(f"click on the rim: {time.perf_counter() - start:.2f} s; {segment.edits.status.value}")
    segment.results.flush()
    screen.shot("Segment tumour", out / "click_segment.png", scroll_to=segment.edits)
    screen.window.resize(1920, 1080)
    settle()
    share_width(screen.window, screen.docks["Explain"])  # the column as a 1920 px window would have it
    viewer.reset_view()
    screen.shot("Explain", out / "all_docks_1920x1080.png")
    viewer.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
