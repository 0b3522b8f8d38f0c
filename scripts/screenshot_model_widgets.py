"""Screenshot of the Model manager and Run model widgets running mindgrab in a real viewer
(1366x768, every Brain DL dock open: scripts/screens.py).

Run under a virtual display (napari's canvas needs a real GL context)::

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_model_widgets.py \
        ../shared/data/brainchop_models docs/screenshots/run_model_mindgrab.png
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main(models: Path, out: Path) -> None:
    """Open t1_crop, add mindgrab in the manager, run it threaded, screenshot the window."""
    os.environ.setdefault("NAPARI_BRAIN_DL_HOME", tempfile.mkdtemp())  # keep the user's settings clean
    from napari.layers import Layer
    from screens import Screen, settle

    from napari_brain_dl._napari.reader import read_paths

    screen = Screen(title="napari-brain-dl: Run model")
    viewer = screen.viewer
    for data, kwargs, kind in read_paths(str(models / "t1_crop.nii.gz")):
        viewer.add_layer(Layer.create(data, kwargs, kind))
    manager, runner = screen.widgets["Model manager"], screen.widgets["Run model"]
    manager.folder.value = models / "mindgrab"
    manager.model.value = "mindgrab"
    runner.refresh()
    runner.model.value, runner.device.value = "mindgrab", "cpu"
    start = time.perf_counter()
    runner.run()
    while not runner.run_button.enabled:
        settle(0.05)
    mask = next(layer for layer in viewer.layers if layer._type_string == "labels")
    prov = mask.metadata["provenance"]
    ml = float(np.count_nonzero(mask.data)) * float(np.prod(mask.scale)) / 1000.0
    print(f"mindgrab: {time.perf_counter() - start:.1f} s wall, {prov['seconds']} s in predict, "
          f"{ml:.0f} mL, shape {mask.data.shape} vs {viewer.layers[0].data.shape}")
    zs = np.nonzero(mask.data.any(axis=(1, 2)))[0]
    viewer.dims.set_point(0, float(mask.translate[0] + mask.scale[0] * (zs.min() + zs.max()) / 2))
    screen.shot("Run model", out)
    print(f"saved {out}; status: {runner.status.value}")
    viewer.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
