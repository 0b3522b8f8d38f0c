"""Screenshots of the Load exam and Display widgets in a real viewer (the README's pictures).

Run under a virtual display (napari's canvas needs a real GL context)::

    xvfb-run -a -s "-screen 0 1800x1000x24" python scripts/screenshot_exam.py ../shared/data docs/screenshots
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np


def main(data: Path, out: Path) -> None:
    """Load the BraTS exam with the widget, overlay the tumor labels, and save four views."""
    import napari
    from napari.layers import Layer
    from qtpy.QtWidgets import QApplication

    from napari_brain_dl._napari import display, reader_preference
    from napari_brain_dl._napari.layers import volume_to_layer_data
    from napari_brain_dl._napari.sample_data import brain_exam
    from napari_brain_dl.core.io import load

    reader_preference.set_asker(lambda parent, reply: None)  # a screenshot never shows the reader question

    def pump(times: int = 5) -> None:
        """Let the deferred display updates (camera, letters: tens of ms after their events) run."""
        for _ in range(times):
            QApplication.processEvents()
            time.sleep(0.05)
        QApplication.processEvents()

    def shot(name: str) -> None:
        pump()
        viewer.screenshot(str(out / name), canvas_only=False, flash=False)

    def clear() -> None:
        for layer in list(viewer.layers):
            viewer.layers.remove(layer)
        pump()

    viewer = napari.Viewer(title="napari-brain-dl")
    viewer.window._qt_window.resize(1800, 1000)
    _, exam = viewer.window.add_plugin_dock_widget("napari-brain-dl", "Load exam")
    _, view = viewer.window.add_plugin_dock_widget("napari-brain-dl", "Display")
    exam.synchronous = True
    exam.files.value = [data / f"brats_gli_00001/{n}.nii.gz" for n in ("t1c", "t1n", "t2f", "t2w")]
    exam.reference.value = "t1c"
    exam.load()
    seg = load(data / "brats_gli_00001/seg-BraTS23_1.nii.gz", name="tumor (BraTS23 algorithm)")
    labels = viewer.add_layer(Layer.create(*volume_to_layer_data(seg, "labels", opacity=0.45)))
    pump()
    centre = np.argwhere(labels.data > 0).mean(0)
    viewer.dims.set_point(0, float(labels.translate[0] + labels.scale[0] * centre[0]))
    viewer.layers.selection.active = viewer.layers["t1c"]
    viewer.reset_view()
    shot("brats_exam_axial_radiological.png")
    display.set_convention(viewer, "neurological")
    view.convention.value = "neurological"
    shot("brats_exam_axial_neurological.png")
    display.set_convention(viewer, "radiological")
    view.convention.value = "radiological"
    view.view.value = "coronal"
    pump()
    viewer.dims.set_point(1, float(labels.translate[1] + labels.scale[1] * centre[1]))
    shot("brats_exam_coronal.png")

    clear()
    pd = load(data / "niivue_chris/chris_PD.nii.gz")
    viewer.add_layer(Layer.create(*volume_to_layer_data(pd)))
    pump()  # the first scan's axial set-up runs first, then the sagittal choice
    view.view.value = "sagittal"
    shot("chris_pd_sagittal_2p4mm_slices.png")

    clear()
    for layer_data in brain_exam():
        viewer.add_layer(Layer.create(*layer_data))
    view.view.value = "axial"
    pump()
    viewer.dims.set_point(0, 30.0)
    shot("sample_exam_simulated_lesion.png")
    viewer.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
