"""Screenshot of Explain (Grad-CAM of tumor-present with its checks), at 1366x768 with every dock open.

Run under a virtual display (napari's canvas needs a real GL context)::

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_explain.py \
        ../shared/data/brats2015_flair_t1c/brats_2013_pat0006_1 docs/screenshots

brats_2013_pat0006_1 was never trained on by the classifier. The expert tumour outline is
drawn beside the heatmap (reference mask of the localisation check). Writes explain_gradcam.png.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np


def main(case: Path, out: Path) -> None:
    """Add FLAIR, T1c and the expert labels, run Grad-CAM with its checks, screenshot."""
    os.environ.setdefault("NAPARI_BRAIN_DL_HOME", tempfile.mkdtemp())
    from napari.layers import Layer
    from screens import Screen, settle

    from napari_brain_dl._napari import display
    from napari_brain_dl._napari.layers import volume_to_layer_data
    from napari_brain_dl.core import io

    screen = Screen(title="napari-brain-dl: Explain")
    viewer, widget = screen.viewer, screen.widgets["Explain"]
    display.install(viewer)
    flair = io.load(case / "Flair_subtrMeanDivStd.nii.gz", name="flair")
    t1c = io.load(case / "T1c_subtrMeanDivStd.nii.gz", name="t1c")
    tumour = io.load(case / "OTMultiClass.nii.gz", name="tumour")
    tumour = tumour.with_data(np.rint(tumour.data).astype(np.uint8))
    for volume, kind in ((flair, "image"), (t1c, "image"), (tumour, "labels")):
        viewer.add_layer(Layer.create(*volume_to_layer_data(volume, kind)))
    settle()
    widget.flair.value, widget.t1c.value, widget.mask.value = "flair", "t1c", "tumour"
    widget.synchronous = True
    widget.run()
    result = widget.result
    print(f"{result.classification.predicted}; checks: "
          + ", ".join(f"{c.name} {c.verdict}" for c in result.checks))
    labels = viewer.layers["tumour"]
    centre = np.argwhere(labels.data > 0).mean(0)
    viewer.dims.set_point(0, float(labels.translate[0] + labels.scale[0] * centre[0]))
    widget.threshold.value = 0.2
    labels.opacity, labels.contour = 0.8, 1  # the expert tumour outline beside the heatmap
    viewer.layers["t1c"].visible = False
    viewer.reset_view()
    screen.shot("Explain", out / "explain_gradcam.png")
    viewer.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
