"""The Refine panel: boundary buttons, lasso / box / scribble tools, paint, one undo / redo history."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from napari_brain_dl._napari.layers import volume_to_layer_data
from napari_brain_dl._napari.widgets.tumor_boundary import TumourEditPanel, remember
from napari_brain_dl._napari.widgets.tumor_clicks import TUMOR_KIND, voxel_to_display
from napari_brain_dl.core.tasks.tumor_edit import compose
from napari_brain_dl.core.volume import Volume

SHAPE = (48, 48, 40)


def _ball(r: float, centre=(24, 24, 20)) -> np.ndarray:
    g = np.ogrid[tuple(slice(0, s) for s in SHAPE)]
    return sum((a - c) ** 2 for a, c in zip(g, centre, strict=True)) <= r * r


def _setup(viewer: Any) -> tuple[TumourEditPanel, Any, np.ndarray, Volume]:
    from napari.layers import Layer

    flair = Volume(
        np.random.default_rng(0).normal(100, 5, SHAPE).astype(np.float32),
        np.diag([-1.0, -1.0, 1.0, 1.0]),
        "flair",
        {},
    )
    dist = ndimage.distance_transform_edt(~_ball(12)) - ndimage.distance_transform_edt(_ball(12))
    prob = np.stack([_ball(6) * 0.9, 1 / (1 + np.exp(dist)), (_ball(6) & ~_ball(3)) * 0.8]).astype(np.float16)
    labels = compose(prob, {"TC": 0.5, "WT": 0.5, "ET": 0.5})
    image = viewer.add_layer(Layer.create(*volume_to_layer_data(flair, "image", name="flair")))
    tumor = viewer.add_layer(
        Layer.create(
            *volume_to_layer_data(
                flair.with_data(labels.copy()), "labels", name="tumor", metadata={TUMOR_KIND: "brats"}
            )
        )
    )
    remember(tumor, prob, {"TC": 0.5, "WT": 0.5, "ET": 0.5})
    panel = TumourEditPanel(viewer, lambda: (image, flair, None, "T1c"), lambda: tumor)
    panel.synchronous = True
    return panel, tumor, labels, flair


def _voxels(layer: Any) -> np.ndarray:
    from napari_brain_dl._napari.layers import layer_volume

    return np.asarray(layer_volume(layer).data)


def test_boundary_lasso_paint_share_one_history(viewer: Any) -> None:
    panel, tumor, labels, _ = _setup(viewer)
    states = [labels.copy()]
    panel.boundary("WT", -1)
    assert (_voxels(tumor) > 0).sum() < (labels > 0).sum() and panel.undo_button.enabled
    states.append(_voxels(tumor).copy())
    square = [[16, 16, 20], [16, 30, 20], [30, 30, 20], [30, 16, 20]]
    image = viewer.layers["flair"]
    assert panel.apply_shape("lasso", [voxel_to_display(image, v) for v in square])
    plane = _voxels(tumor)[:, :, 20] > 0
    want = np.zeros(SHAPE[:2], bool)
    want[16:31, 16:31] = True
    assert np.array_equal(plane, want)
    states.append(_voxels(tumor).copy())
    data = tumor.data.copy()  # napari paint: set a few voxels and emit the paint event
    tumor.data[:3, :3, :3] = 2
    tumor.events.paint(value=[])
    assert not np.array_equal(tumor.data, data)
    states.append(_voxels(tumor).copy())
    for want_state in states[-2::-1]:
        panel.undo()
        assert np.array_equal(_voxels(tumor), want_state)
    assert not panel.undo_button.enabled and panel.redo_button.enabled
    panel.redo()
    assert np.array_equal(_voxels(tumor), states[1])


def test_bad_prompts_are_one_sentence_and_change_nothing(viewer: Any) -> None:
    panel, tumor, labels, _ = _setup(viewer)
    image = viewer.layers["flair"]
    assert not panel.apply_shape("lasso", [voxel_to_display(image, v) for v in ([5, 5, 20], [9, 5, 20])])
    assert "at least three points" in panel.status.value
    assert not panel.apply_shape("box", [voxel_to_display(image, [5, 5, 20])] * 4)
    assert "zero size" in panel.status.value
    assert not panel.apply_shape("scribble", [np.array([-30.0, 5, 5]), np.array([-20.0, 5, 5])])
    assert "outside the scan" in panel.status.value
    panel.remove.value = True
    panel.apply_shape("scribble", [voxel_to_display(image, [2, 2, 2])])
    assert "does not cross" in panel.status.value
    assert np.array_equal(_voxels(tumor), labels) and not panel.undo_button.enabled
    assert not panel.click(np.array([-50.0, 0.0, 0.0]), True) and "outside" in panel.status.value


def test_drawn_shapes_become_prompts_and_keep_sub_regions(viewer: Any) -> None:
    panel, tumor, labels, _ = _setup(viewer)
    image = viewer.layers["flair"]
    panel.tool.value = "box"
    shapes = viewer.layers["tumor prompts"]
    corners = np.array(
        [voxel_to_display(image, v) for v in ([8, 24, 20], [8, 40, 20], [40, 40, 20], [40, 24, 20])]
    )
    shapes.add_rectangles(corners)
    assert len(shapes.data) == 0  # applied, the drawing cleared
    plane = _voxels(tumor)[:, :, 20]
    assert plane.any() and not (plane[:, :24] > 0).any()
    kept = plane > 0
    assert np.array_equal(plane[kept], labels[:, :, 20][kept])  # core and enhancing kept
    panel.tool.value = "off"


def test_segment_tumour_result_is_refined_with_its_probabilities(
    viewer: Any, data_dir: Any, rule_card: str, tmp_path: Any
) -> None:
    from napari.layers import Layer

    from napari_brain_dl._napari.layers import GEOMETRY
    from napari_brain_dl._napari.widgets.segment_tumor import SegmentTumorWidget
    from napari_brain_dl.core import io

    folder = data_dir / "brats_gli_00001"
    for name in ("t2f", "t1c"):
        layer = viewer.add_layer(Layer.create(*volume_to_layer_data(io.load(folder / f"{name}.nii.gz"))))
        layer.metadata[GEOMETRY]["source_meta"]["path"] = str(tmp_path / f"{name}.nii.gz")  # autosave here
    widget = SegmentTumorWidget(viewer)
    widget.synchronous = True
    widget.device.value = "cpu"
    widget.add_model(rule_card)
    widget.run()
    tumor = viewer.layers["tumor"]
    before = _voxels(tumor).copy()
    assert set(np.unique(before).tolist()) >= {0, 2}
    widget.edits.boundary("WT", -1)
    after = _voxels(tumor)
    assert 0 < (after > 0).sum() < (before > 0).sum()  # re-thresholded, no network pass
    kept = after > 0
    assert np.array_equal(after[kept], before[kept])  # sub-regions kept
    assert widget.results.layer is tumor and "Whole tumour" in widget.edits.status.value
    widget.edits.undo()
    assert np.array_equal(_voxels(tumor), before)


def test_a_click_mask_is_refined_as_an_edited_copy(viewer: Any) -> None:
    from napari.layers import Layer

    from napari_brain_dl._napari.widgets.tumor_boundary import EDIT_LAYER

    flair = Volume(np.zeros(SHAPE, np.float32) + 1, np.diag([-1.0, -1.0, 1.0, 1.0]), "flair", {})
    image = viewer.add_layer(Layer.create(*volume_to_layer_data(flair, "image", name="flair")))
    mask = viewer.add_layer(
        Layer.create(
            *volume_to_layer_data(
                flair.with_data(_ball(10).astype(np.uint8)),
                "labels",
                name="tumor (clicks)",
                metadata={TUMOR_KIND: "whole"},
            )
        )
    )
    panel = TumourEditPanel(viewer, lambda: (image, flair, None, "T1c"), lambda: mask)
    panel.synchronous = True
    panel.boundary("WT", -1)
    edited = viewer.layers[EDIT_LAYER]
    got = _voxels(edited)
    assert set(np.unique(got).tolist()) == {0, 2} and 0 < (got > 0).sum() < _ball(10).sum()
    assert np.array_equal(_voxels(mask) > 0, _ball(10))  # the click mask itself is untouched
    panel.undo()
    assert np.array_equal(_voxels(edited) > 0, _ball(10))


def test_refine_click_tool_with_the_shipped_click_model(viewer: Any, data_dir: Any, tmp_path: Any) -> None:
    """Refine's click tool, through the viewer's mouse callback, with the real click model: a
    positive click in a part the result missed grows the whole tumour there and raises its Dice,
    core and enhancing labels stay, and Undo puts the result back."""
    from types import SimpleNamespace

    from napari.layers import Layer

    from napari_brain_dl._napari.layers import GEOMETRY
    from napari_brain_dl.core import io
    from napari_brain_dl.core.tasks.click_segment import next_click

    folder = data_dir / "brats_gli_00001"
    flair, t1c = io.load(folder / "t2f.nii.gz"), io.load(folder / "t1c.nii.gz")
    truth = np.asarray(io.load(folder / "seg-BraTS23_1.nii.gz").data).astype(np.uint8)
    layers = {}
    for name, vol in (("t2f", flair), ("t1c", t1c)):
        layers[name] = viewer.add_layer(Layer.create(*volume_to_layer_data(vol, name=name)))
        layers[name].metadata[GEOMETRY]["source_meta"]["path"] = str(tmp_path / f"{name}.nii.gz")
    start = truth.copy()  # a result that missed the oedema on one side of the tumour
    centre = int(np.argwhere(truth > 0)[:, 0].mean())
    start[centre:][start[centre:] == 2] = 0
    tumor = viewer.add_layer(Layer.create(*volume_to_layer_data(
        flair.with_data(start.copy()), "labels", name="tumor", metadata={TUMOR_KIND: "brats"})))
    panel = TumourEditPanel(viewer, lambda: (layers["t2f"], flair, t1c, "T1c"), lambda: tumor)
    panel.synchronous, panel.device = True, "cpu"
    panel.tool.value = "click"

    def wt_dice(labels: np.ndarray) -> float:
        a, b = labels > 0, truth > 0
        return float(2 * (a & b).sum() / (a.sum() + b.sum()))

    voxel, positive = next_click(start > 0, truth > 0)
    assert positive and start[voxel] == 0 and truth[voxel] == 2 and wt_dice(start) < 0.9
    world = layers["t2f"].data_to_world(voxel_to_display(layers["t2f"], voxel))
    event = SimpleNamespace(type="mouse_press", button=1, modifiers=(), position=world, pos=np.zeros(2))
    for callback in list(viewer.mouse_drag_callbacks):  # what napari does with a press and a release
        gen = callback(viewer, event)
        if gen is not None:
            next(gen, None)
            event.type = "mouse_release"
            next(gen, None)
    after = _voxels(tumor)
    assert after[voxel] > 0 and wt_dice(after) > wt_dice(start) + 0.02, (wt_dice(start), wt_dice(after))
    for label in (1, 3):  # core and enhancing as they were
        assert np.array_equal(after == label, start == label)
    assert "positive click" in panel.status.value and panel.undo_button.enabled
    panel.undo()
    assert np.array_equal(_voxels(tumor), start)
    panel.tool.value = "off"


def test_a_tumour_layer_on_another_grid_is_one_sentence(viewer: Any) -> None:
    """Same shape, another affine (a label map of another exam): refused, the layer untouched."""
    from napari.layers import Layer

    flair = Volume(np.ones(SHAPE, np.float32), np.diag([-1.0, -1.0, 1.0, 1.0]), "flair", {})
    other = Volume(np.ones(SHAPE, np.float32), np.diag([-1.0, -1.0, 2.0, 1.0]), "other", {})
    image = viewer.add_layer(Layer.create(*volume_to_layer_data(flair, "image", name="flair")))
    labels = (_ball(8) * 2).astype(np.uint8)
    tumor = viewer.add_layer(Layer.create(*volume_to_layer_data(
        other.with_data(labels.copy()), "labels", name="tumor", metadata={TUMOR_KIND: "brats"})))
    before = np.asarray(tumor.data).copy()
    panel = TumourEditPanel(viewer, lambda: (image, flair, None, "T1c"), lambda: tumor)
    panel.synchronous = True
    panel.boundary("WT", -1)
    assert "not on the exam's grid" in panel.status.value
    assert np.array_equal(np.asarray(tumor.data), before) and not panel.undo_button.enabled
