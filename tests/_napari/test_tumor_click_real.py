"""Click on the tumour of brats_gli_00001 through the widget with the shipped click model.

The click goes in as a napari data point on the FLAIR layer (as a mouse click would), the
mask comes back on FLAIR's grid, overlaps the reference label, and on screen it sits on the
side the radiological convention demands (patient left on the screen's right).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Layer

from napari_brain_dl._napari import display
from napari_brain_dl._napari.layers import volume_to_layer_data
from napari_brain_dl._napari.widgets.segment_tumor import SegmentTumorWidget
from napari_brain_dl._napari.widgets.tumor_clicks import MASK_LAYER, voxel_to_display
from napari_brain_dl._napari.widgets.tumor_results import layer_volume
from napari_brain_dl.core import io
from napari_brain_dl.core.tasks.click_segment import next_click


def _screen_column(viewer: Any, layer: Any) -> float:
    """Mean screen column of the lit pixels when only `layer` is shown."""
    visible = {other.name: other.visible for other in viewer.layers}
    for other in viewer.layers:
        other.visible = other is layer
    shot = viewer.screenshot(canvas_only=True, flash=False)
    for other in viewer.layers:
        other.visible = visible[other.name]
    return float(np.nonzero(shot[..., :3].max(axis=-1) > 40)[1].mean())


def test_click_outlines_the_tumour_on_the_right_side(viewer: Any, data_dir: Path, tmp_path: Path,
                                                      qtbot: Any) -> None:
    folder = data_dir / "brats_gli_00001"
    flair, t1c = io.load(folder / "t2f.nii.gz"), io.load(folder / "t1c.nii.gz")
    truth = np.asarray(io.load(folder / "seg-BraTS23_1.nii.gz").data) > 0
    layers = {}
    for name, vol in (("t2f", flair), ("t1c", t1c)):
        layers[name] = viewer.add_layer(Layer.create(*volume_to_layer_data(vol)))
        layers[name].metadata["brain_dl_geometry"]["source_meta"]["path"] = str(tmp_path / f"{name}.nii.gz")
    widget = SegmentTumorWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment tumour", area="right")
    widget.synchronous, widget.device.value = True, "cpu"
    widget.clicks.synchronous, widget.clicks.device = True, "cpu"
    widget.clicks.toggle.value = True

    mask = np.zeros(truth.shape, bool)
    dices = []
    for _ in range(3):  # the protocol: innermost voxel of the largest error region
        voxel, positive = next_click(mask, truth)
        assert widget.clicks.add_click(voxel_to_display(layers["t2f"], voxel), positive)
        labels = viewer.layers[MASK_LAYER]
        result = layer_volume(labels)
        assert result.same_grid(flair)
        mask = np.asarray(result.data) > 0
        dices.append(2 * (mask & truth).sum() / (mask.sum() + truth.sum()))
    assert dices[0] > 0.75 and max(dices) > 0.85, dices

    centre = np.argwhere(labels.data > 0).mean(0)
    viewer.dims.set_point(0, float(labels.translate[0] + labels.scale[0] * centre[0]))
    qtbot.wait(50)
    assert display.convention(viewer) == "radiological"
    tumour_x = (flair.affine @ [*np.argwhere(truth).mean(0), 1])[0]
    brain_x = (flair.affine @ [*np.argwhere(np.asarray(flair.data) > 0).mean(0), 1])[0]
    assert tumour_x < brain_x  # this tumour is in the patient's left hemisphere (RAS+ x)
    assert _screen_column(viewer, labels) > _screen_column(viewer, layers["t2f"])  # screen right
