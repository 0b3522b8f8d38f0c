"""The "Explain" widget in a real viewer (run under Xvfb), on the held-out BraTS case.

The project's classifier (tumor-present) explains brats_2013_pat0006_1 (never trained on):
the heatmap lands on FLAIR's grid, the checks and the deletion/insertion curves show, and
a screenshot goes to $NAPARI_BRAIN_DL_SHOTS/explain_gradcam.png when that variable names a
folder, else into the test's tmp_path (the README's copy, at 1366x768 with every dock open, is
made by scripts/screenshot_explain.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from napari.layers import Layer

from napari_brain_dl._napari.layers import volume_to_layer_data
from napari_brain_dl._napari.widgets.explain import HEATMAP, ExplainWidget
from napari_brain_dl.core import io
from napari_brain_dl.core.volume import Volume

SHOTS_VARIABLE = "NAPARI_BRAIN_DL_SHOTS"


@pytest.fixture(scope="module")
def case(data_dir: Path) -> dict[str, Volume]:
    folder = data_dir / "brats2015_flair_t1c" / "brats_2013_pat0006_1"
    return {
        "flair": io.load(folder / "Flair_subtrMeanDivStd.nii.gz", name="flair"),
        "t1c": io.load(folder / "T1c_subtrMeanDivStd.nii.gz", name="t1c"),
        "tumour": io.load(folder / "OTMultiClass.nii.gz", name="tumour"),
    }


@pytest.fixture
def widget(viewer: Any, case: dict[str, Volume]) -> ExplainWidget:
    viewer.add_layer(Layer.create(*volume_to_layer_data(case["flair"])))
    viewer.add_layer(Layer.create(*volume_to_layer_data(case["t1c"])))
    tumour = case["tumour"].with_data(np.rint(case["tumour"].data).astype(np.uint8))
    viewer.add_layer(Layer.create(*volume_to_layer_data(tumour, "labels", opacity=0.0)))
    w = ExplainWidget(viewer)
    viewer.window.add_dock_widget(w, name="Explain", area="right")
    w.synchronous = True
    return w


def test_gradcam_heatmap_checks_plot_and_screenshot(
    viewer: Any, widget: ExplainWidget, case: dict, qtbot: Any, tmp_path: Path
) -> None:
    assert widget.flair.value == "flair" and widget.t1c.value == "t1c"  # preselected from the names
    assert widget.model.value == "tumor-present"
    assert "blocks.3" in widget.layer.choices
    assert widget.mask.value == "tumour"  # the tumour labels are preselected as reference mask
    seen: list[tuple[int, int]] = []
    original = widget._progress
    widget._progress = lambda d, t, s: (seen.append((d, t)), original(d, t, s))  # type: ignore[method-assign]
    widget.run()
    result = widget.result
    assert result is not None and result.classification.predicted == "tumour"
    layer = viewer.layers[HEATMAP]
    assert layer.colormap.name == "inferno" and layer.blending == "additive"
    assert layer.metadata["provenance"]["method"] == "gradcam"
    assert [c["name"] for c in layer.metadata["checks"]] == [c.name for c in result.checks]  # for reports
    assert result.heatmap.same_grid(case["flair"])
    assert len(seen) > 5 and seen[-1][0] == seen[-1][1]  # forward passes done / total
    texts = {lab.label: lab.value for lab in widget.check_labels}
    assert all(v.split()[0] in ("PASS", "WARN", "FAIL") for v in texts.values()), texts
    for check in result.checks:  # each check's plain-language sentence is on screen, not in a tooltip
        text = widget.check_texts[check.name]
        assert text.value == check.sentence and text.native.isVisible() and text.native.wordWrap()
    legend = widget.figure.axes[0].get_legend()
    assert min(t.get_fontsize() for t in legend.get_texts()) >= 8  # readable (was 6 pt)
    assert len(widget.figure.axes[0].lines) == 4  # deletion / insertion, saliency / random
    widget.opacity.value = 0.8
    widget.threshold.value = 0.5
    assert layer.opacity == pytest.approx(0.8) and layer.contrast_limits[0] == pytest.approx(
        0.5 * layer.data.max()
    )
    # go to the axial slice through the tumour and keep a screenshot for the docs
    labels = viewer.layers["tumour"]
    centre = np.argwhere(labels.data > 0).mean(0)
    viewer.dims.set_point(0, float(labels.translate[0] + labels.scale[0] * centre[0]))
    widget.threshold.value = 0.2
    labels.opacity, labels.contour = 0.8, 1  # the expert tumour outline beside the heatmap
    widget.side_by_side.value = True
    assert widget._grid_model().enabled
    widget.side_by_side.value = False
    viewer.window._qt_window.resize(1550, 950)
    viewer.reset_view()
    qtbot.wait(200)
    shots = Path(os.environ.get(SHOTS_VARIABLE) or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(shots / "explain_gradcam.png"), canvas_only=False, flash=False)
    assert (shots / "explain_gradcam.png").stat().st_size > 10_000


def test_bad_layer_is_one_sentence_and_adds_nothing(viewer: Any, widget: ExplainWidget) -> None:
    widget.layer.choices = ["(default)", "nope"]  # as if the menu were out of date
    widget.layer.value = "nope"
    widget.checks.value = False
    widget.run()
    assert HEATMAP not in viewer.layers
    assert "no layer called 'nope'" in widget.status.value and widget.run_button.enabled


def test_cancel_adds_nothing(viewer: Any, widget: ExplainWidget, monkeypatch: pytest.MonkeyPatch) -> None:
    from napari_brain_dl.core.tasks import classify as task

    def cancelled(*args: Any, cancel: Any = None, **kwargs: Any) -> Any:
        widget.cancel()
        cancel.raise_if_cancelled()

    monkeypatch.setattr(task, "explain", cancelled)
    widget.run()
    assert HEATMAP not in viewer.layers and "Cancelled" in widget.status.value
