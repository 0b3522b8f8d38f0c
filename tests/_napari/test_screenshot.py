"""Left/right on screen: the BraTS tumor appears where the convention says it must.

Radiological convention: patient left on screen right. The patient side of the
tumor is found from the label map's own affine (RAS+: +x is patient right).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from napari.layers import Layer

from napari_brain_dl._napari import display
from napari_brain_dl._napari.layers import volume_to_layer_data
from napari_brain_dl.core.io import load


def settle(qtbot: Any, ms: int = 50) -> None:
    """Let deferred display updates (letters, camera) run."""
    qtbot.wait(ms)


def _screen_columns(viewer: Any, layer: Any) -> np.ndarray:
    """Mean screen column (pixels) of the non-black pixels when only `layer` is shown."""
    for other in viewer.layers:
        other.visible = other is layer
    shot = viewer.screenshot(canvas_only=True, flash=False)
    lit = shot[..., :3].max(axis=-1) > 40
    return np.nonzero(lit)[1].mean()


def test_tumor_side_follows_convention(viewer: Any, data_dir: Path, qtbot: Any) -> None:
    folder = data_dir / "brats_gli_00001"
    seg_img = nib.load(str(folder / "seg-BraTS23_1.nii.gz"))
    t1c_img = nib.load(str(folder / "t1c.nii.gz"))
    tumor_x = (seg_img.affine @ [*np.argwhere(np.asanyarray(seg_img.dataobj) > 0).mean(0), 1])[0]
    brain_x = (t1c_img.affine @ [*np.argwhere(np.asanyarray(t1c_img.dataobj) > 0).mean(0), 1])[0]
    tumor_on_patient_left = tumor_x < brain_x  # RAS+: smaller x is towards the patient's left

    image = viewer.add_layer(Layer.create(*volume_to_layer_data(load(folder / "t1c.nii.gz"))))
    seg = load(folder / "seg-BraTS23_1.nii.gz")
    labels = viewer.add_layer(Layer.create(*volume_to_layer_data(seg, "labels")))
    settle(qtbot)
    # Go to the axial slice through the tumor centre.
    centre = np.argwhere(labels.data > 0).mean(0)
    viewer.dims.set_point(0, float(labels.translate[0] + labels.scale[0] * centre[0]))
    settle(qtbot)
    assert display.convention(viewer) == "radiological"
    assert list(viewer.layers["orientation letters"].features["letter"]) == ["A", "P", "R", "L"]

    brain_col, tumor_col = _screen_columns(viewer, image), _screen_columns(viewer, labels)
    # Radiological: patient left is on the screen's right.
    assert (tumor_col > brain_col) == tumor_on_patient_left

    display.set_convention(viewer, "neurological")
    settle(qtbot)
    brain_col2, tumor_col2 = _screen_columns(viewer, image), _screen_columns(viewer, labels)
    assert (tumor_col2 > brain_col2) == (not tumor_on_patient_left)


def test_views_are_upright(viewer: Any, data_dir: Path, qtbot: Any) -> None:
    volume = load(data_dir / "niivue_chris" / "chris_PD.nii.gz")
    viewer.add_layer(Layer.create(*volume_to_layer_data(volume)))
    settle(qtbot)
    display.show_view(viewer, "sagittal")
    settle(qtbot)
    camera = viewer.scene.camera
    assert tuple(map(str, camera.orientation2d)) == ("up", "right")  # superior up, anterior left
    assert list(viewer.layers["orientation letters"].features["letter"]) == ["I", "S", "A", "P"]
    display.show_view(viewer, "coronal")
    settle(qtbot)
    assert tuple(map(str, camera.orientation2d)) == ("up", "right")
    assert list(viewer.layers["orientation letters"].features["letter"]) == ["I", "S", "R", "L"]


def test_letters_take_no_grid_cell(viewer: Any, data_dir: Path, qtbot: Any) -> None:
    folder = data_dir / "brats_gli_00001"
    for name in ("t1c.nii.gz", "t2f.nii.gz"):
        viewer.add_layer(Layer.create(*volume_to_layer_data(load(folder / name))))
    settle(qtbot)
    letters = viewer.layers["orientation letters"]
    assert letters.visible
    viewer.canvas.grid.enabled = True
    settle(qtbot)
    assert not letters.visible
    assert viewer.canvas.grid.actual_shape(viewer.layers) == (1, 2)  # two scans, two cells
    viewer.canvas.grid.enabled = False
    settle(qtbot)
    assert letters.visible


def test_letters_stay_on_screen_when_zoomed(viewer: Any, data_dir: Path, qtbot: Any) -> None:
    """Zoomed in (or a canvas narrower than the scan), R and L still show at the canvas edges."""
    viewer.add_layer(Layer.create(*volume_to_layer_data(load(data_dir / "brats_gli_00001" / "t2f.nii.gz"))))
    settle(qtbot)
    camera = viewer.scene.camera
    camera.zoom *= 3
    settle(qtbot, 100)
    letters = viewer.layers["orientation letters"]
    assert list(letters.features["letter"]) == ["A", "P", "R", "L"]
    shot = viewer.screenshot(canvas_only=True, flash=False)
    height, width = viewer.canvas.size
    assert shot.shape[:2] == (height, width)
    displayed = list(viewer.dims.displayed)
    centre = np.asarray(camera.center, dtype=float)[-2:]
    for point in letters.data:
        screen = (point[displayed] - centre) * camera.zoom  # pixels from the canvas centre
        assert abs(screen[0]) < height / 2 and abs(screen[1]) < width / 2, (screen, (height, width))
    yellow = (shot[..., 0] > 200) & (shot[..., 1] > 200) & (shot[..., 2] < 80)
    columns = np.nonzero(yellow.any(axis=0))[0]
    assert columns.min() < width * 0.1 and columns.max() > width * 0.9  # letters at both side edges
