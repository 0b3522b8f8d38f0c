"""Screenshots of the Synthesize and Super-resolve widgets on real scans.

Run under a virtual display (napari's canvas needs a real GL context)::

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_synthesis.py \
        ../shared/data docs/screenshots

Writes synthesize.png (held-out brats_2013_pat0006_1: T1c, the real FLAIR and the synthetic
FLAIR side by side) and super_resolve.png (chris_PD, 2.4 mm slices, coronal view: B-spline
beside the self-supervised result).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main(data: Path, out: Path) -> None:
    """Open each case, run the widget(s), screenshot the whole window."""
    os.environ.setdefault("NAPARI_BRAIN_DL_HOME", tempfile.mkdtemp())
    import napari
    from napari.layers import Layer
    from qtpy.QtWidgets import QApplication

    from napari_brain_dl._napari import display
    from napari_brain_dl._napari.reader import read_paths
    from napari_brain_dl._napari.widgets.display_controls import DisplayControls
    from napari_brain_dl._napari.widgets.super_resolve import SuperResolveWidget
    from napari_brain_dl._napari.widgets.synthesize import SynthesizeWidget

    app = QApplication.instance() or QApplication([])

    def settle(seconds: float = 1.0) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.05)

    def viewer_with(title: str, paths: list[Path]) -> napari.Viewer:
        viewer = napari.Viewer(title=f"napari-brain-dl: {title}")
        viewer.window._qt_window.resize(1800, 1000)
        display.install(viewer)
        for path in paths:
            for data, kwargs, kind in read_paths(str(path)):
                viewer.add_layer(Layer.create(data, kwargs, kind))
        return viewer

    def run(widget: object) -> None:
        start = time.perf_counter()
        widget.run()  # type: ignore[attr-defined]
        while not widget.run_button.enabled:  # type: ignore[attr-defined]
            settle(0.2)
        seconds = time.perf_counter() - start
        print(f"{type(widget).__name__}: {seconds:.0f} s; {widget.status.value}")  # type: ignore[attr-defined]

    out.mkdir(parents=True, exist_ok=True)
    case = data / "brats2015_flair_t1c" / "brats_2013_pat0006_1"
    scans = [case / "T1c_subtrMeanDivStd.nii.gz", case / "Flair_subtrMeanDivStd.nii.gz"]
    viewer = viewer_with("Synthesize", scans)
    widget = SynthesizeWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Synthesize", area="right")
    widget.flair.value, widget.target.value, widget.device.value = "(none)", "FLAIR", "cpu"
    run(widget)
    labels = np.asarray(read_paths(str(case / "OTMultiClass.nii.gz"))[0][0])
    centre = np.argwhere(labels > 0).mean(0)
    layer = viewer.layers["FLAIR (synthetic)"]
    viewer.dims.set_point(0, float(layer.translate[0] + layer.scale[0] * centre[0]))
    viewer.layers["Flair_subtrMeanDivStd"].visible = True  # the real FLAIR, for comparison
    viewer.layers["orientation letters"].visible = False  # no grid cell of its own
    viewer.layers.move(viewer.layers.index(layer), 0)  # grid order: synthetic, real FLAIR, T1c
    viewer.reset_view()
    settle(2)
    viewer.screenshot(str(out / "synthesize.png"), canvas_only=False)
    viewer.close()

    viewer = viewer_with("Super-resolve", [data / "niivue_chris" / "chris_PD.nii.gz"])
    controls = DisplayControls(viewer)
    widget = SuperResolveWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Super-resolve", area="right")
    widget.device.value = "cpu"
    widget.method.value = "bspline"
    run(widget)
    viewer.layers["chris_PD (super-resolved)"].name = "B-spline"
    widget.method.value = "self-supervised"
    run(widget)
    viewer.layers["chris_PD (super-resolved)"].name = "self-supervised SR"
    viewer.layers["chris_PD"].visible = False
    viewer.layers["orientation letters"].visible = False
    controls.view.value = "coronal"
    view = display.grid(viewer)
    view.shape, view.enabled = (1, -1), True
    viewer.reset_view()
    settle(2)
    viewer.screenshot(str(out / "super_resolve.png"), canvas_only=False)
    viewer.close()
    print(f"saved {out}/synthesize.png and super_resolve.png")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
