"""The "Segment tumour" widget in a real viewer (run under Xvfb).

The automatic runs use the deterministic stand-in card (`rule_card` in tests/conftest.py)
on the real BraTS case in ../shared/data; the click tests use a fake click model (a cube
around each click) so they are about the wiring: coordinates, signs, in-place updates, one
undo / redo history with napari's paint, the queue and starting from nothing. The FLAIR
layer's source path is pointed into tmp_path so autosaves never land in the shared data folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from napari.layers import Layer

from napari_brain_dl._napari import autosave
from napari_brain_dl._napari.layers import (
    GEOMETRY,
    labels_like,
    layer_to_volume,
    same_layer,
    volume_to_layer_data,
)
from napari_brain_dl._napari.widgets import task_panel, tumor_results
from napari_brain_dl._napari.widgets.segment_tumor import SegmentTumorWidget
from napari_brain_dl._napari.widgets.tumor_clicks import POINTS_LAYER, display_to_voxel, voxel_to_display
from napari_brain_dl._napari.widgets.tumor_results import layer_volume
from napari_brain_dl.core import io
from napari_brain_dl.core.tasks.measure import tumor_measurements
from napari_brain_dl.core.volume import Volume


@pytest.fixture(scope="module")
def brats(data_dir: Path) -> dict[str, Volume]:
    folder = data_dir / "brats_gli_00001"
    return {name: io.load(folder / f"{name}.nii.gz") for name in ("t2f", "t1c")}


def _add(viewer: Any, volume: Volume, path: Path | None = None) -> Any:
    layer = viewer.add_layer(Layer.create(*volume_to_layer_data(volume)))
    source = layer.metadata[GEOMETRY]["source_meta"]
    if path is None:
        source.pop("path", None)
    else:
        source["path"] = str(path)  # autosaves go to tmp_path, never into the shared data
    return layer


@pytest.fixture
def exam(viewer: Any, brats: dict[str, Volume], tmp_path: Path) -> tuple[Any, SegmentTumorWidget]:
    """Viewer with t2f (FLAIR) and t1c layers and a docked widget in synchronous mode."""
    _add(viewer, brats["t2f"], tmp_path / "t2f.nii.gz")
    _add(viewer, brats["t1c"], tmp_path / "t1c.nii.gz")
    widget = SegmentTumorWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment tumour", area="right")
    widget.synchronous = True
    widget.device.value = "cpu"
    return viewer, widget


def _run(widget: SegmentTumorWidget, card: str, tta: bool = False) -> Any:
    widget.add_model(card)
    widget.tta.value = tta
    widget.run()
    return widget._viewer.layers["tumor"]


# -- automatic segmentation ----------------------------------------------------------------
def test_the_default_model_is_the_flair_t1c_ensemble(exam: tuple[Any, SegmentTumorWidget]) -> None:
    """The first choice is the shipped FLAIR + T1c model, not the network for exams without T1c
    (which sorted first by file name)."""
    from napari_brain_dl.core.tasks.tumor import DEFAULT_MODEL

    _, widget = exam
    assert widget.model.value == DEFAULT_MODEL == "brats-tumor-seg"
    assert "brats-tumor-seg-no-t1c" in [value for _, value in widget._model_choices()]


def test_run_adds_named_labels_on_flair_grid(exam: tuple[Any, SegmentTumorWidget], rule_card: str,
                                            brats: dict[str, Volume]) -> None:
    viewer, widget = exam
    chosen = (widget.flair.value, widget.t1c.value, widget.t1.value, widget.t2.value)
    assert chosen == ("t2f", "t1c", "(none)", "(none)")
    layer = _run(widget, rule_card)
    flair = viewer.layers["t2f"]
    assert layer.data.shape == flair.data.shape and layer.data.dtype == np.uint8
    np.testing.assert_allclose(layer.scale, flair.scale)
    np.testing.assert_allclose(layer.translate, flair.translate)
    back = layer_to_volume(layer.data, {"metadata": layer.metadata})
    np.testing.assert_allclose(back.affine, brats["t2f"].affine)
    assert back.shape == brats["t2f"].shape and {1, 2, 3} >= set(np.unique(back.data)) - {0}
    assert (back.data == 2).any()
    names = ["background", "necrotic / non-enhancing core", "edema", "enhancing"]
    assert list(layer.features["name"]) == names
    assert tuple(layer.colormap.map(2)[:3]) == pytest.approx((60 / 255, 200 / 255, 60 / 255))
    assert layer.metadata["provenance"]["model_id"] == "rule-tumor"
    assert "tumor uncertainty" not in viewer.layers and not widget.review.visible
    assert widget.run_button.enabled and "segmented" in widget.status.value
    # the status bar names the class under the cursor
    world = layer.data_to_world(np.argwhere(layer.data == 2)[0])
    viewer.dims.set_point(0, world[0])
    status = layer.get_status(world, world=True)
    assert "edema" in str(status)
    # measurements table = core measurements of the layer
    expected = tumor_measurements(back)
    for key in ("necrotic_core_ml", "edema_ml", "enhancing_ml", "whole_tumor_ml", "tumor_core_ml"):
        assert widget.results.measurements[key] == pytest.approx(expected[key])
    rows = list(widget.results.table.row_headers)
    assert float(widget.results.table.data[rows.index("whole 1+2+3 (mL)"), 0]) == pytest.approx(
        expected["whole_tumor_ml"], abs=0.01)


def test_tta_adds_uncertainty_and_review_moves_the_slice(exam: tuple[Any, SegmentTumorWidget],
                                                         rule_card: str) -> None:
    viewer, widget = exam
    _run(widget, rule_card, tta=True)
    unc = viewer.layers["tumor uncertainty"]
    assert unc.colormap.name == "inferno" and str(unc.blending) == "additive"
    assert tuple(unc.contrast_limits) == (0.0, 0.5) and not widget.review.visible  # nothing to review
    np.testing.assert_allclose(unc.translate, viewer.layers["t2f"].translate)
    # the rule model is flip-equivariant (nothing to review): give it two entries
    widget.show_review([{"axis": 2, "index": 60, "uncertain_voxels": 12}, {"axis": 2, "index": 70,
                                                                           "uncertain_voxels": 5}])
    assert widget.review.visible and len(widget.review.choices) == 2
    flair = viewer.layers["t2f"]  # LPS: voxel axis 2 (S) is display axis 0, not flipped
    widget.review.value = 1
    assert viewer.dims.point[0] == pytest.approx(flair.translate[0] + 70 * flair.scale[0])
    widget.go_to_review(0)
    assert viewer.dims.point[0] == pytest.approx(flair.translate[0] + 60 * flair.scale[0])


def test_missing_t1c_gives_the_whole_tumour_and_says_why(
    viewer: Any, brats: dict[str, Volume], tmp_path: Path, rule_card: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    said: list[str] = []
    monkeypatch.setattr(task_panel, "show_warning", said.append)
    _add(viewer, brats["t2f"], tmp_path / "t2f.nii.gz")
    widget = SegmentTumorWidget(viewer)
    widget.synchronous = True
    widget.device.value = "cpu"
    assert widget.flair.value == "t2f" and widget.t1c.value is None
    layer = _run(widget, rule_card)
    assert set(np.unique(np.asarray(layer.data))) == {0, 2}  # whole tumour only
    assert any("only the whole tumour" in s and "T1c" in s for s in said)
    assert set(layer.metadata["provenance"]["regions_left_out"]) == {"TC", "ET"}


def test_empty_image_is_one_sentence(exam: tuple[Any, SegmentTumorWidget], brats: dict[str, Volume],
                                     rule_card: str, monkeypatch: pytest.MonkeyPatch) -> None:
    viewer, widget = exam
    errors: list[str] = []
    monkeypatch.setattr(task_panel, "show_error", errors.append)
    zero = brats["t1c"].with_data(np.zeros(brats["t1c"].shape, np.int16), name="zero")
    _add(viewer, zero)
    widget.t1c.value = "zero"
    widget.add_model(rule_card)
    widget.run()
    assert len(errors) == 1 and "empty" in errors[0] and "\n" not in errors[0]
    assert "tumor" not in viewer.layers and widget.run_button.enabled


def test_cancel_leaves_no_result(exam: tuple[Any, SegmentTumorWidget], rule_card: str, qtbot: Any,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    viewer, widget = exam
    before = len(viewer.layers)
    with monkeypatch.context() as patch:  # Cancel pressed at the first progress report
        patch.setattr(SegmentTumorWidget, "_progress", lambda self, done, total, text: self.cancel())
        _ = widget.add_model(rule_card), widget.run()
    assert len(viewer.layers) == before and widget.run_button.enabled
    widget.synchronous = False  # threaded: Cancel right after Run
    widget.run()
    widget.cancel()
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=60000)
    assert len(viewer.layers) == before and "Cancel" in widget.status.value


# -- coordinates ---------------------------------------------------------------------------------
@pytest.mark.parametrize("affine", [
    np.array([[-1.5, 0, 0, 30.0], [0, -1.0, 0, 20.0], [0, 0, 2.0, -10.0], [0, 0, 0, 1]]),  # LPS
    np.diag([1.0, 1.0, 1.0, 1.0]),  # RAS
    np.array([[0, 0, -1.0, 5.0], [1.2, 0, 0, 0.0], [0, -3.0, 0, 9.0], [0, 0, 0, 1]]),  # permuted, flipped
])
def test_display_to_voxel_follows_the_geometry(affine: np.ndarray) -> None:
    shape = (7, 9, 11)
    index = np.indices(shape)
    code = (index[0] * 10000 + index[1] * 100 + index[2]).astype(np.int32)
    data, kwargs, _ = volume_to_layer_data(Volume(code, affine), "image")
    layer = SimpleNamespace(data=data, metadata=kwargs["metadata"])
    rng = np.random.default_rng(0)
    for point in rng.integers(0, data.shape, size=(20, 3)):
        voxel = display_to_voxel(layer, point + 0.3)  # positions round to the nearest voxel
        value = int(data[tuple(point)])
        assert voxel == (value // 10000, value // 100 % 100, value % 100)
        np.testing.assert_array_equal(voxel_to_display(layer, voxel), point)
    assert display_to_voxel(layer, np.array(data.shape)) is None  # outside the grid


# -- clicks (Refine's click tool) -----------------------------------------------------------------
class FakeSegmenter:
    """Click model stand-in: logit +1 in a cube of side 7 around each positive click, -1 elsewhere
    and in a cube around each negative click."""

    def __init__(self, flair: Volume, t1c: Volume, delay: float = 0.0) -> None:
        self.flair, self.t1c, self.calls, self.delay = flair, t1c, [], delay

    def logits(self, fg: list[tuple[int, int, int]], bg: list[tuple[int, int, int]] = (),
               mask: Any = None, cancel: Any = None) -> tuple[tuple[slice, ...], np.ndarray]:
        time.sleep(self.delay)
        self.calls.append((list(fg), list(bg)))
        logit = -np.ones(self.flair.shape, np.float32)
        for points, value in ((fg, 1), (bg, -1)):
            for i, j, k in points:
                logit[max(i - 3, 0):i + 4, max(j - 3, 0):j + 4, max(k - 3, 0):k + 4] = value
        return tuple(slice(0, n) for n in self.flair.shape), logit


def _click_widget(exam: tuple[Any, SegmentTumorWidget], delay: float = 0.0) -> tuple[Any, Any, list[Any]]:
    viewer, widget = exam
    sessions: list[FakeSegmenter] = []
    widget.edits.segmenter_factory = lambda f, t: sessions.append(FakeSegmenter(f, t, delay)) or sessions[-1]
    widget.edits.tool.value = "click"
    return viewer, widget.edits, sessions


def _cube(point: Any) -> np.ndarray:
    i, j, k = (int(v) for v in point)
    return np.s_[i - 3:i + 4, j - 3:j + 4, k - 3:k + 4]


def test_clicks_and_paint_share_one_history_with_their_points(exam: tuple[Any, SegmentTumorWidget]) -> None:
    """No result yet: clicks start from nothing on "tumor (edited)"; a napari paint joins the same
    history; Undo / Redo step back through both and put the click markers back with the mask."""
    from napari_brain_dl._napari.widgets.tumor_boundary import EDIT_LAYER

    viewer, edits, sessions = _click_widget(exam)
    flair = viewer.layers["t2f"]
    assert POINTS_LAYER in viewer.layers and viewer.layers.selection.active.name == POINTS_LAYER
    inside, outside = np.array([77.0, 100.0, 140.0]), np.array([77.0, 100.0, 145.0])
    assert edits.click(inside, positive=True)
    layer = viewer.layers[EDIT_LAYER]
    array, first = layer.data, np.array(layer.data)
    voxel = display_to_voxel(flair, inside)
    assert sessions[0].calls == [([voxel], [])]
    assert (first > 0).sum() == 7 ** 3 and set(np.unique(first[_cube(inside)])) == {2}
    assert layer_to_volume(layer.data, {"metadata": layer.metadata}).same_grid(layer_volume(flair))
    assert edits.click(outside, positive=False)
    assert len(sessions) == 1 and sessions[0].calls[-1] == ([voxel], [display_to_voxel(flair, outside)])
    assert viewer.layers[EDIT_LAYER] is layer and layer.data is array  # in place
    assert layer.data[tuple(inside.astype(int))] == 2 and (layer.data > 0).sum() == 7 ** 3 - 7 * 7 * 2
    points = viewer.layers[POINTS_LAYER]
    assert list(points.features["sign"]) == ["positive", "negative"]
    np.testing.assert_allclose(points.face_color[:, :3], [[0.1, 0.9, 0.1], [1.0, 0.0, 1.0]])
    np.testing.assert_allclose(points.data, [inside, outside])
    second = np.array(layer.data)
    layer.data[:3, :3, :3] = 3  # napari paint, then its event
    layer.events.paint(value=[])
    painted = np.array(layer.data)
    edits.undo()
    np.testing.assert_array_equal(layer.data, second)
    edits.undo()
    np.testing.assert_array_equal(layer.data, first)
    assert list(points.features["sign"]) == ["positive"] and edits.redo_button.enabled
    edits.redo()
    edits.redo()
    np.testing.assert_array_equal(layer.data, painted)
    assert list(points.features["sign"]) == ["positive", "negative"]
    assert not edits.click(np.array([-50.0, 0.0, 0.0]), positive=True)  # outside the scan
    assert "outside" in edits.status.value
    np.testing.assert_array_equal(layer.data, painted)


def test_a_click_the_model_overrules_is_explained(exam: tuple[Any, SegmentTumorWidget]) -> None:
    """A positive click where the model answers no (here: inside a negative click's cube): the status
    says why and what to do instead."""
    _, edits, _ = _click_widget(exam)
    inside, outside = np.array([77.0, 100.0, 140.0]), np.array([77.0, 100.0, 145.0])
    assert edits.click(inside, positive=True) and "sees no tumour" not in edits.status.value
    assert edits.click(outside, positive=False)
    assert edits.click(outside, positive=True)
    assert "The click model sees no tumour here" in edits.status.value and "lasso" in edits.status.value


def test_without_t1c_the_click_model_gets_t1_and_says_so(viewer: Any, brats: dict[str, Volume],
                                                          data_dir: Path, tmp_path: Path) -> None:
    """FLAIR and T1, no T1c (no contrast agent): Refine's clicks give the click model T1 in T1c's place
    and the first click says so."""
    t1 = io.load(data_dir / "brats_gli_00001" / "t1n.nii.gz")
    _add(viewer, brats["t2f"], tmp_path / "t2f.nii.gz")
    _add(viewer, t1, tmp_path / "t1n.nii.gz")
    widget = SegmentTumorWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment tumour", area="right")
    widget.synchronous = True
    widget.t1c.value, widget.t1.value = None, "t1n"
    _, edits, sessions = _click_widget((viewer, widget))
    assert edits.click(np.array([77.0, 100.0, 140.0]), positive=True)
    assert "T1 stands in for the click model's T1c" in edits.status.value
    assert np.array_equal(np.asarray(sessions[0].t1c.data), np.asarray(t1.data))
    assert edits.click(np.array([77.0, 100.0, 150.0]), positive=True)
    assert "T1 stands in" not in edits.status.value


def test_click_tool_off_and_on_keeps_the_clicks_in_a_plugin_dock(viewer: Any, brats: dict[str, Volume],
                                                                 tmp_path: Path) -> None:
    """Opened from the Plugins menu the widget sees proxied layers; switching tools must not forget clicks."""
    _add(viewer, brats["t2f"], tmp_path / "t2f.nii.gz")
    _add(viewer, brats["t1c"], tmp_path / "t1c.nii.gz")
    _, widget = viewer.window.add_plugin_dock_widget("napari-brain-dl", "Segment tumour")
    sessions: list[FakeSegmenter] = []
    widget.edits.segmenter_factory = lambda f, t: sessions.append(FakeSegmenter(f, t)) or sessions[-1]
    widget.edits.synchronous = True
    widget.edits.tool.value = "click"
    assert widget.edits.click(np.array([77.0, 100.0, 140.0]), True)
    widget.edits.tool.value = "off"
    widget.edits.tool.value = "click"
    assert widget.edits.click(np.array([77.0, 100.0, 143.0]), False)
    assert len(sessions) == 1 and [len(c[0]) + len(c[1]) for c in sessions[0].calls] == [1, 2]
    assert widget.edits.undo_button.enabled


def test_mouse_clicks_have_the_right_sign(exam: tuple[Any, SegmentTumorWidget]) -> None:
    viewer, edits, sessions = _click_widget(exam)
    flair = viewer.layers["t2f"]
    world = flair.data_to_world([77, 100, 140])

    def press(button: int, modifiers: tuple[str, ...], drag: bool = False) -> None:
        event = SimpleNamespace(type="mouse_press", button=button, modifiers=modifiers, position=world,
                                pos=np.array([10.0, 10.0]))
        gen = edits._on_mouse(viewer, event)
        next(gen)
        if drag:
            event.type, event.pos = "mouse_move", np.array([40.0, 10.0])
            next(gen, None)
        event.type = "mouse_release"
        next(gen, None)

    press(2, ())  # from nothing a negative click first is one sentence
    assert not sessions and "positive click inside the tumour" in edits.status.value
    press(1, ())
    press(1, ("Shift",))
    press(1, (), drag=True)  # a pan, not a click
    assert list(viewer.layers[POINTS_LAYER].features["sign"]) == ["positive", "negative"]
    voxel = display_to_voxel(flair, [77, 100, 140])
    assert sessions[0].calls == [([voxel], []), ([voxel], [voxel])]


def test_clicks_while_busy_are_queued(exam: tuple[Any, SegmentTumorWidget], qtbot: Any) -> None:
    """Clicks made while the model runs show at once and are applied in order, one step each."""
    from napari_brain_dl._napari.widgets.tumor_boundary import EDIT_LAYER

    viewer, edits, sessions = _click_widget(exam, delay=0.5)
    edits.synchronous = False
    clicks = [np.array([77.0, y, 140.0]) for y in (100.0, 110.0, 120.0)]
    assert edits.click(clicks[0], True)
    assert edits.click(clicks[1], True)  # while the first runs
    assert "queued" in edits.status.value and len(viewer.layers[POINTS_LAYER].data) == 2
    edits.boundary("WT", -1)  # anything else waits for a quiet moment: one sentence
    assert "Busy" in edits.status.value
    assert edits.click(clicks[2], True)
    qtbot.waitUntil(lambda: not edits._busy and not edits._queue, timeout=20000)
    assert [len(fg) for fg, _ in sessions[0].calls] == [1, 2, 3]  # in order
    layer = viewer.layers[EDIT_LAYER]
    assert (layer.data > 0).sum() == 3 * 7 ** 3 and len(viewer.layers[POINTS_LAYER].data) == 3
    edits.synchronous = True
    edits.undo()
    assert (layer.data > 0).sum() == 2 * 7 ** 3 and len(viewer.layers[POINTS_LAYER].data) == 2


def test_real_click_model_on_flair_grid(exam: tuple[Any, SegmentTumorWidget], data_dir: Path) -> None:
    """The shipped click model, one click inside the tumour from nothing: the wiring and provenance."""
    from napari_brain_dl.core.tasks.click_segment import next_click

    viewer, widget = exam
    truth = np.asarray(io.load(data_dir / "brats_gli_00001" / "seg-BraTS23_1.nii.gz").data) > 0
    voxel, _ = next_click(np.zeros(truth.shape, bool), truth)
    widget.edits.device = "cpu"
    widget.edits.tool.value = "click"
    assert widget.edits.click(voxel_to_display(viewer.layers["t2f"], voxel), True)
    layer = widget.edits.layer
    assert layer.data.shape == viewer.layers["t2f"].data.shape and set(np.unique(layer.data)) == {0, 2}
    assert "positive click" in widget.edits.status.value
    assert widget.results.layer is layer and widget.results.kind == "brats"
    assert layer.metadata["provenance"]["edits"]["click_model"]["model_id"] == "brats-tumor-click"
    assert widget.results.measurements["whole_tumor_ml"] == pytest.approx(np.count_nonzero(layer.data) / 1000)


def test_start_from_nothing_beside_a_result(exam: tuple[Any, SegmentTumorWidget], rule_card: str,
                                           tmp_path: Path) -> None:
    """With an automatic result, "Start from nothing" clicks on a new layer; the result stays, and
    choosing it again follows it (a pending autosave is written first)."""
    viewer, edits, _ = _click_widget(exam)
    widget = exam[1]
    tumor = _run(widget, rule_card)
    before = np.array(tumor.data)
    edits.start_from_nothing()
    edits.tool.value = "click"
    edits.click(np.array([77.0, 100.0, 140.0]), True)
    assert widget.results.layer is edits.layer and not same_layer(edits.layer, tumor)
    assert (edits.layer.data > 0).sum() == 7 ** 3 and widget.results._dirty
    np.testing.assert_array_equal(tumor.data, before)
    assert not tumor.visible and edits.layer.visible  # one outline at a time
    viewer.layers.selection.active = tumor  # e.g. to paint it: the pending autosave is written first
    assert autosave.user_path(viewer.layers["t2f"]).exists()
    assert widget.results.layer is tumor and widget.results.kind == "brats"
    edits.boundary("WT", -1)  # Refine follows the chosen result again
    assert same_layer(edits.layer, tumor) and not np.array_equal(tumor.data, before)


# -- edits, autosave, measurements, export -----------------------------------------------------
def test_paint_autosaves_and_remeasures(exam: tuple[Any, SegmentTumorWidget], rule_card: str,
                                        tmp_path: Path) -> None:
    viewer, widget = exam
    layer = _run(widget, rule_card)
    before = widget.results.measurements["enhancing_ml"]
    layer.brush_size = 5
    layer.paint((77, 20, 20), 3)  # napari's paint: one history step, a "paint" event
    assert widget.results._dirty and widget.results._timer.isActive()
    widget.results.flush()
    saved = autosave.user_path(viewer.layers["t2f"])
    assert saved.parent.parent == autosave.user_autosave_root() and not list(tmp_path.glob("*autosave*"))
    assert saved.exists() and not widget.results._timer.isActive()
    volume = io.load(saved)
    np.testing.assert_allclose(volume.affine, layer_volume(viewer.layers["t2f"]).affine)
    np.testing.assert_array_equal(volume.data, layer_volume(layer).data)
    m, expected = widget.results.measurements, tumor_measurements(layer_volume(layer))
    assert m["enhancing_ml"] > before
    for key in ("necrotic_core_ml", "edema_ml", "enhancing_ml", "whole_tumor_ml", "tumor_core_ml"):
        assert m[key] == pytest.approx(expected[key])
    assert m["lesions"][0]["longest_mm"] == pytest.approx(expected["lesions"][0]["longest_mm"])
    # the lesion count reads as in the report, with the minimum size named
    from napari_brain_dl.core.report import lesion_summary

    table = widget.results.table.to_dict("dict")["value"]
    assert table["lesions >= 10 mm"] == str(m["measurable_lesions"])
    assert table["smaller foci"] == str(len(m["lesions"]) - m["measurable_lesions"])
    assert widget.results.table.tooltip == lesion_summary(m)
    layer.undo()  # napari's undo is an edit too
    assert widget.results._dirty
    widget.results.flush()
    assert widget.results.measurements["enhancing_ml"] == pytest.approx(before)
    # Restore autosave brings the labels back on the FLAIR grid
    assert widget.results.restore_button.enabled
    restored = widget.results.restore()
    np.testing.assert_array_equal(restored.data, layer.data)
    np.testing.assert_allclose(restored.translate, layer.translate)


def test_autosave_beside_the_exam_only_when_chosen_and_writable(exam: tuple[Any, SegmentTumorWidget],
                                                                rule_card: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    viewer, widget = exam
    told: list[str] = []
    monkeypatch.setattr(tumor_results, "show_info", told.append)
    flair = viewer.layers["t2f"]
    layer = _run(widget, rule_card)
    widget.results.beside.value = True
    layer.paint((77, 100, 140), 1)
    widget.results.flush()
    assert (tmp_path / "t2f_tumor_autosave.nii.gz").exists()  # chosen, writable: beside the exam
    locked = tmp_path / "locked"
    locked.mkdir()
    flair.metadata[GEOMETRY]["source_meta"]["path"] = str(locked / "t2f.nii.gz")
    locked.chmod(0o555)  # read-only folder: refused even for root (permission bits, not os.access)
    try:
        for _ in range(2):
            layer.paint((77, 100, 141), 1)
            widget.results.flush()
        assert not list(locked.iterdir())
    finally:
        locked.chmod(0o755)
    assert autosave.user_path(flair).exists()
    assert len([t for t in told if "autosaved in" in t]) == 1  # said once
    flair.metadata[GEOMETRY]["source_meta"].pop("path")  # no folder at all: the user folder too
    layer.paint((77, 100, 142), 1)
    widget.results.flush()
    assert autosave.user_path(flair).exists()


def test_autosave_is_keyed_by_the_exam(tmp_path: Path, viewer: Any, brats: dict[str, Volume]) -> None:
    """Two exams with the same file names in different folders never share an autosave."""
    a = _add(viewer, brats["t2f"], tmp_path / "a" / "t2f.nii.gz")
    b = _add(viewer, brats["t2f"], tmp_path / "b" / "t2f.nii.gz")
    assert autosave.user_path(a) != autosave.user_path(b)
    assert autosave.user_path(a).name == "t2f_tumor_autosave.nii.gz"
    assert autosave.user_path(a).parent.name.startswith("t2f-")
    assert autosave.autosave_path(a, beside=True) == (autosave.user_path(a), False)  # folder a/ is missing


def test_exports_refuse_silent_overwrite(exam: tuple[Any, SegmentTumorWidget], rule_card: str,
                                         tmp_path: Path) -> None:
    viewer, widget = exam
    _run(widget, rule_card)
    results = widget.results
    out = tmp_path / "out" / "seg.nii.gz"
    out.parent.mkdir()
    results.ask_path = lambda caption, default, filter: str(out)
    assert results.nifti_button.enabled and not results.seg_button.enabled  # FLAIR is NIfTI
    assert results.export_nifti() == out
    saved = io.load(out)
    np.testing.assert_allclose(saved.affine, layer_volume(viewer.layers["t2f"]).affine)
    np.testing.assert_array_equal(saved.data, layer_volume(viewer.layers["tumor"]).data)
    stamp = out.stat().st_mtime_ns
    asked: list[str] = []
    results.confirm = lambda question: asked.append(question) or False
    assert results.export_nifti() is None and out.stat().st_mtime_ns == stamp
    assert "already exists" in asked[0] and "Not saved" in results.status.value
    results.confirm = lambda question: True
    assert results.export_nifti() == out
    report = tmp_path / "out" / "m.json"
    results.ask_path = lambda caption, default, filter: str(report)
    assert results.save_json() == report
    record = json.loads(report.read_text())
    assert record["measurements"]["whole_tumor_ml"] == pytest.approx(results.measurements["whole_tumor_ml"])
    assert record["provenance"]["model_id"] == "rule-tumor" and record["manual_edits"] is False


def test_dicom_seg_export_from_a_dicom_flair(viewer: Any, data_dir: Path, tmp_path: Path) -> None:
    dicom = io.load(data_dir / "dicom_t1_axial")
    flair = viewer.add_layer(Layer.create(*volume_to_layer_data(dicom, name="flair")))
    widget = SegmentTumorWidget(viewer)
    labels = viewer.add_layer(Layer.create(*labels_like(flair, "tumor")))
    centre = tuple(s // 2 for s in labels.data.shape)
    labels.data[centre[0] - 2:centre[0] + 2, centre[1] - 5:centre[1] + 5, centre[2] - 5:centre[2] + 5] = 2
    widget.results.attach(labels)
    assert widget.results.seg_button.enabled
    out = tmp_path / "seg.dcm"
    widget.results.ask_path = lambda caption, default, filter: str(out)
    assert widget.results.export_dicom_seg() == out
    import pydicom

    ds = pydicom.dcmread(out)
    assert ds.Modality == "SEG" and ds.SegmentSequence[0].SegmentLabel == "edema"


def test_display_details_a_reader_needs(exam: tuple[Any, SegmentTumorWidget], rule_card: str,
                                        qtbot: Any) -> None:
    """Issue 22 item 10: slider name, no letters row, a colour legend, visible clicks, one outline."""
    from napari_brain_dl._napari.display import LETTER_OVERLAYS, PLANES

    viewer, widget = exam
    qtbot.wait(50)  # the display updates after the layer events
    assert tuple(viewer.dims.axis_labels)[-3:] == PLANES  # the slider says "axial", not "-3"
    view = viewer.window._qt_viewer.layers
    rows = {str(view.model().index(r, 0).data()): view.isRowHidden(r) for r in range(view.model().rowCount())}
    assert set(rows) == {x.name for x in viewer.layers} and not any(rows.values())  # no letters row
    assert [viewer.canvas.overlays[key].text for key in LETTER_OVERLAYS.values()] == ["A", "P", "R", "L"]
    _run(widget, rule_card)
    legend = widget.results.legend.value
    assert all(name in legend for name in ("necrotic", "edema", "enhancing"))
    assert "#3cc83c" in legend  # edema's own colour (60, 200, 60)
    assert legend.count("<br>") == 2 and "2 edema" in legend  # one line per class, with its label value
    _, edits, _ = _click_widget(exam)
    edits.click(np.array([77.0, 100.0, 140.0]), True)
    points = viewer.layers[POINTS_LAYER]
    assert points.size.min() >= 8 and np.allclose(points.border_color[0], [1, 1, 1, 1])
