"""Left/right on screen: the BraTS tumor appears where the convention says it must.

Radiological convention: patient left on screen right. The patient side of the
tumor is found from the label map's own affine (RAS+: +x is patient right).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
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
    assert display.screen_letters(viewer) == {"top": "A", "bottom": "P", "left": "R", "right": "L"}

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
    assert _letters(viewer) == ("S", "I", "A", "P")  # top, bottom, left, right
    display.show_view(viewer, "coronal")
    settle(qtbot)
    assert tuple(map(str, camera.orientation2d)) == ("up", "right")
    assert _letters(viewer) == ("S", "I", "R", "L")


def _letters(viewer: Any) -> tuple[str, ...]:
    """The letters the canvas shows (top, bottom, left, right), read from napari's overlays."""
    overlays = viewer.canvas.overlays
    shown = {edge: overlays[key].text for edge, key in display.LETTER_OVERLAYS.items()
             if key in overlays and overlays[key].visible}
    assert shown == display.screen_letters(viewer)
    return tuple(shown.get(edge, "") for edge in ("top", "bottom", "left", "right"))


def test_letters_are_canvas_overlays_not_a_layer(viewer: Any, data_dir: Path, qtbot: Any) -> None:
    """Issue 22 item 10: the letters are drawn on the canvas; the layer list holds only scans."""
    viewer.add_layer(Layer.create(*volume_to_layer_data(load(data_dir / "brats_gli_00001" / "t2f.nii.gz"))))
    settle(qtbot)
    assert [x.name for x in viewer.layers] == ["t2f"] and display.LETTERS_LAYER not in viewer.layers
    assert _letters(viewer) == ("A", "P", "R", "L")
    viewer.dims.ndisplay = 3
    settle(qtbot)
    assert _letters(viewer) == ("", "", "", "")  # no edges to name in 3D
    viewer.dims.ndisplay = 2
    settle(qtbot)
    viewer.layers.clear()
    settle(qtbot)
    assert _letters(viewer) == ("", "", "", "")


def test_letters_in_every_grid_cell(viewer: Any, data_dir: Path, qtbot: Any) -> None:
    folder = data_dir / "brats_gli_00001"
    for name in ("t1c.nii.gz", "t2f.nii.gz"):
        viewer.add_layer(Layer.create(*volume_to_layer_data(load(folder / name))))
    settle(qtbot)
    viewer.canvas.grid.enabled = True
    settle(qtbot, 100)
    assert viewer.canvas.grid.actual_shape(viewer.layers) == (1, 2)  # two scans, two cells, no letters cell
    assert _letters(viewer) == ("A", "P", "R", "L")
    shot = viewer.screenshot(canvas_only=True, flash=False)
    yellow = (shot[..., 0] > 200) & (shot[..., 1] > 200) & (shot[..., 2] < 80)
    width = shot.shape[1]
    columns = np.nonzero(yellow.any(axis=0))[0]
    # R and L at both edges of each cell: letters left and right of the middle, near it too
    assert columns.min() < width * 0.1 and columns.max() > width * 0.9
    assert np.any((columns > width * 0.35) & (columns < width * 0.65))


def test_letters_stay_on_screen_when_zoomed(viewer: Any, data_dir: Path, qtbot: Any) -> None:
    """Zoomed in (or a canvas narrower than the scan), R and L still show at the canvas edges."""
    viewer.add_layer(Layer.create(*volume_to_layer_data(load(data_dir / "brats_gli_00001" / "t2f.nii.gz"))))
    settle(qtbot)
    camera = viewer.scene.camera
    camera.zoom *= 3
    settle(qtbot, 100)
    assert _letters(viewer) == ("A", "P", "R", "L")
    shot = viewer.screenshot(canvas_only=True, flash=False)
    height, width = viewer.canvas.size
    assert shot.shape[:2] == (height, width)
    yellow = (shot[..., 0] > 200) & (shot[..., 1] > 200) & (shot[..., 2] < 80)
    columns = np.nonzero(yellow.any(axis=0))[0]
    rows = np.nonzero(yellow.any(axis=1))[0]
    assert columns.min() < width * 0.1 and columns.max() > width * 0.9  # letters at both side edges
    assert rows.min() < height * 0.1 and rows.max() > height * 0.9  # and at the top and bottom


def _marked_scan(path: Path, tmp_path: Path) -> Path:
    """`path` blanked, with one bright cube towards the patient's right, anterior and superior."""
    img = nib.load(str(path))
    shape = np.array(img.shape[:3])
    corners = np.array(np.meshgrid(*[(0, n - 1) for n in shape], indexing="ij")).reshape(3, -1).T
    ras = nib.affines.apply_affine(img.affine, corners)
    low, high = ras.min(0), ras.max(0)
    target = low + (high - low) * 0.8  # RAS+: big x is right, big y anterior, big z superior
    centre = np.round(nib.affines.apply_affine(np.linalg.inv(img.affine), target)).astype(int)
    data = np.zeros(img.shape[:3], np.uint8)
    lo, hi = np.maximum(centre - 8, 0), np.minimum(centre + 9, shape)
    data[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = 200
    out = tmp_path / path.name
    nib.save(nib.Nifti1Image(data, img.affine), str(out))
    return out


@pytest.mark.parametrize(("scan", "axcodes"), [("brats_gli_00001/t1c.nii.gz", "LPS"),
                                               ("niivue_chris/chris_t1.nii.gz", "RAS"),
                                               ("brainchop_models/t1_crop.nii.gz", "LIA")])
def test_letters_name_the_side_where_the_anatomy_is(viewer: Any, data_dir: Path, tmp_path: Path, qtbot: Any,
                                                    scan: str, axcodes: str) -> None:
    """A cube at the patient's right-anterior-superior shows next to the R, A and S letters,
    in every view and both conventions, whatever the file's voxel order."""
    path = _marked_scan(data_dir / scan, tmp_path)
    assert "".join(nib.aff2axcodes(nib.load(str(path)).affine)) == axcodes
    layer = viewer.add_layer(Layer.create(*volume_to_layer_data(load(path))))
    layer.contrast_limits = (0, 200)
    settle(qtbot)
    cube = layer.data_to_world(np.argwhere(np.asarray(layer.data) > 0).mean(0))
    expected = {"axial": ("A", "R"), "coronal": ("S", "R"), "sagittal": ("S", "A")}  # cube's edges
    for view in ("axial", "coronal", "sagittal"):
        for name in display.CONVENTIONS:
            display.set_convention(viewer, name)
            display.show_view(viewer, view)
            for axis in range(3):
                if axis not in viewer.dims.displayed:
                    viewer.dims.set_point(axis, float(cube[axis]))
            viewer.reset_view()
            settle(qtbot)
            shot = viewer.screenshot(canvas_only=True, flash=False)
            grey = (shot[..., 0] > 100) & (np.abs(shot[..., 0].astype(int) - shot[..., 2]) < 30)
            rows, columns = np.nonzero(grey)
            assert rows.size, (view, name)
            top, bottom, left, right = _letters(viewer)
            vertical = top if rows.mean() < shot.shape[0] / 2 else bottom
            horizontal = left if columns.mean() < shot.shape[1] / 2 else right
            assert (vertical, horizontal) == expected[view], (view, name, _letters(viewer))
            if view == "sagittal":
                break  # left/right does not show in a sagittal view


def test_napari_without_canvas_overlays_gets_a_hidden_letters_layer(viewer: Any, data_dir: Path, qtbot: Any,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """napari < 0.9 has no ``viewer.canvas.overlays``: the letters fall back to a points layer,
    kept out of sight in the layer list, with the same letters."""
    monkeypatch.setattr(display, "_canvas_overlays", lambda viewer: None)
    viewer.add_layer(Layer.create(*volume_to_layer_data(load(data_dir / "brats_gli_00001" / "t2f.nii.gz"))))
    settle(qtbot)
    letters = viewer.layers[display.LETTERS_LAYER]
    assert list(letters.features["letter"]) == ["A", "P", "R", "L"]
    view = viewer.window._qt_viewer.layers
    model = view.model()
    hidden = {str(model.index(r, 0).data()): view.isRowHidden(r) for r in range(model.rowCount())}
    assert hidden == {display.LETTERS_LAYER: True, "t2f": False}
