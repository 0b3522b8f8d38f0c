"""The "Synthesize" and "Super-resolve" widgets, and synthetic inputs in "Segment tumour" (real viewer).

Real scans from ../shared/data: brats_gli_00001 (T1c, FLAIR) and chris_PD (2.4 mm slices).
The histogram baseline and B-spline keep these tests fast; the self-supervised network is
only started to be cancelled (its quality is tested in tests/core/test_super_resolve.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from napari.layers import Layer

from napari_brain_dl._napari.display import grid
from napari_brain_dl._napari.layers import GEOMETRY, layer_volume, volume_to_layer_data
from napari_brain_dl._napari.widgets import super_resolve as super_resolve_widget
from napari_brain_dl._napari.widgets import task_panel
from napari_brain_dl._napari.widgets.segment_tumor import SegmentTumorWidget
from napari_brain_dl._napari.widgets.super_resolve import SuperResolveWidget
from napari_brain_dl._napari.widgets.synthesize import SynthesizeWidget
from napari_brain_dl._napari.writer import write_image
from napari_brain_dl.core import io
from napari_brain_dl.core.volume import Volume


@pytest.fixture(scope="module")
def gli(data_dir: Path) -> dict[str, Volume]:
    folder = data_dir / "brats_gli_00001"
    return {name: io.load(folder / f"{name}.nii.gz") for name in ("t1c", "t2f")}


@pytest.fixture(scope="module")
def chris_pd(data_dir: Path) -> Volume:
    return io.load(data_dir / "niivue_chris" / "chris_PD.nii.gz")


def _add(viewer: Any, volume: Volume) -> Any:
    layer = viewer.add_layer(Layer.create(*volume_to_layer_data(volume)))
    layer.metadata[GEOMETRY]["source_meta"].pop("path", None)  # nothing is ever written beside shared data
    return layer


def _scans(viewer: Any) -> list[str]:
    """Names of the image and labels layers (not the display's orientation letters)."""
    return [layer.name for layer in viewer.layers if layer._type_string in ("image", "labels")]


def _said(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    said: list[str] = []
    monkeypatch.setattr(task_panel, "show_warning", said.append)
    return said


# -- Synthesize ------------------------------------------------------------------------------------
def test_synthesize_adds_a_marked_layer_on_the_source_grid(viewer: Any, gli: dict[str, Volume],
                                                           tmp_path: Path) -> None:
    _add(viewer, gli["t1c"])
    widget = SynthesizeWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Synthesize", area="right")
    widget.synchronous = True
    assert (widget.t1c.value, widget.flair.value, widget.target.value) == ("t1c", "(none)", "FLAIR")
    assert "histogram" in widget.method.choices
    widget.method.value = "histogram"
    widget.run()
    layer = viewer.layers["FLAIR (synthetic)"]
    assert layer.metadata["synthetic"] is True and layer.colormap.name == "synthetic (tinted)"
    volume = layer_volume(layer)
    assert volume.same_grid(gli["t1c"]) and volume.meta["synthetic"]
    assert grid(viewer).enabled and "not an acquired scan" in widget.status.value
    # saved through napari's writer, the file keeps the stamp in its name and header
    written = Path(write_image(str(tmp_path / "flair.nii.gz"), *layer.as_layer_data_tuple()[:2])[0])
    assert written.name == "flair_synthetic.nii.gz"
    header = nib.load(written).header
    assert header["descrip"].tobytes().decode().startswith("SYNTHETIC FLAIR from T1c")
    assert header["intent_name"].tobytes().rstrip(b"\0") == b"SYNTHETIC"
    np.testing.assert_allclose(nib.load(written).affine, gli["t1c"].affine, atol=1e-5)


def test_side_by_side_shows_the_synthetic_image_when_opened_from_the_plugins_menu(
        viewer: Any, gli: dict[str, Volume]) -> None:
    """napari gives a plugin's widget a proxied viewer: the synthetic image must still be shown."""
    from napari_brain_dl._napari.display import LETTERS_LAYER

    _add(viewer, gli["t1c"])
    _, widget = viewer.window.add_plugin_dock_widget("napari-brain-dl", "Synthesize")
    assert type(widget._viewer).__name__ == "PublicOnlyProxy"  # as a person opens it
    widget.synchronous, widget.method.value = True, "histogram"
    widget.run()
    shown = [layer.name for layer in viewer.layers if layer.visible and layer.name != LETTERS_LAYER]
    assert shown == ["t1c", "FLAIR (synthetic)"]
    rows, cols = grid(viewer).actual_shape(list(viewer.layers))
    assert grid(viewer).enabled and rows * cols == 2


def test_side_by_side_opens_on_the_brain_centre_zoomed_to_fit(viewer: Any, gli: dict[str, Volume]) -> None:
    """The slice shown goes through the brain's centre (not the top of the head); panels fill the canvas."""
    from napari_brain_dl._napari.display import LETTERS_LAYER

    layer = _add(viewer, gli["t1c"])
    widget = SynthesizeWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Synthesize", area="right")
    widget.synchronous, widget.method.value = True, "histogram"
    widget.run()
    assert "from T1c" in widget.status.value  # the contrasts used are named
    data = np.asarray(layer.data)
    centre = np.argwhere(data > 0).mean(0)
    world = np.asarray(layer.data_to_world(centre))
    for axis in range(3):
        if axis not in viewer.dims.displayed:
            assert abs(viewer.dims.point[axis] - world[axis]) <= 1.0
    cells = [ly for ly in viewer.layers if ly.name != LETTERS_LAYER]
    rows, cols = grid(viewer).actual_shape(list(viewer.layers))
    assert rows * cols >= len([ly for ly in cells if ly.visible])
    extent = np.asarray(layer.extent.world[1] - layer.extent.world[0])[list(viewer.dims.displayed)]
    zoom = float(getattr(viewer, "scene", viewer).camera.zoom)
    height, width = viewer.canvas.size
    # one panel's field fills the canvas along its limiting side (within the grid's spacing)
    fill = max(zoom * rows * extent[0] / height, zoom * cols * extent[1] / width)
    assert fill > 0.8


def test_synthesize_offers_no_t1c_target(viewer: Any, gli: dict[str, Volume]) -> None:
    _add(viewer, gli["t1c"])
    widget = SynthesizeWidget(viewer)
    assert "T1c" not in widget.target.choices and set(widget.target.choices) == {"FLAIR", "T2", "T1"}


def test_synthesize_refuses_a_present_target_and_synthetic_sources(viewer: Any, gli: dict[str, Volume],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    said = _said(monkeypatch)
    _add(viewer, gli["t1c"])
    _add(viewer, gli["t2f"])
    widget = SynthesizeWidget(viewer)
    widget.synchronous = True
    assert widget.target.value != "FLAIR"  # FLAIR is there: the target moves to a missing contrast
    widget.target.value = "FLAIR"
    assert widget.method.choices == ()
    widget.run()
    assert len(said) == 1 and "already there" in said[0] and _scans(viewer) == ["t1c", "t2f"]
    widget.flair.value = "(none)"
    viewer.layers["t2f"].metadata["synthetic"] = True
    widget.t2.value = "t2f"
    widget.target.value = "T1"
    widget.run()
    assert len(said) == 2 and "synthetic" in said[1] and _scans(viewer) == ["t1c", "t2f"]


# -- Segment tumour with a synthetic contrast --------------------------------------------------------
def test_segment_tumor_fills_a_missing_flair_only_with_consent(viewer: Any, gli: dict[str, Volume],
                                                               rule_card: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    said = _said(monkeypatch)
    _add(viewer, gli["t1c"])
    widget = SegmentTumorWidget(viewer)
    widget.synchronous = True
    widget.device.value = "cpu"
    widget.add_model(rule_card)
    widget.run()
    assert len(said) == 1 and "Allow synthetic" in said[0] and _scans(viewer) == ["t1c"]
    widget.allow_synthetic.value = True
    widget.run()
    synthetic, tumor = viewer.layers["FLAIR (synthetic)"], viewer.layers["tumor"]
    assert synthetic.metadata["synthetic"] and widget.flair.value == "FLAIR (synthetic)"
    assert tumor.metadata["provenance"]["synthetic_inputs"] == ["FLAIR"]
    assert layer_volume(tumor).same_grid(gli["t1c"])


def test_segment_tumor_refuses_a_synthetic_layer_without_consent(viewer: Any, gli: dict[str, Volume],
                                                                 rule_card: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    said = _said(monkeypatch)
    _add(viewer, gli["t1c"])
    fake = _add(viewer, gli["t2f"])
    fake.metadata["synthetic"] = True
    widget = SegmentTumorWidget(viewer)
    widget.synchronous = True
    widget.add_model(rule_card)
    assert widget.flair.value == "t2f"
    widget.run()
    assert len(said) == 1 and "synthetic, not acquired" in said[0] and "tumor" not in viewer.layers


# -- Super-resolve ---------------------------------------------------------------------------------
def test_super_resolve_bspline_adds_an_isotropic_layer_over_the_same_field(viewer: Any,
                                                                           chris_pd: Volume) -> None:
    _add(viewer, chris_pd)
    widget = SuperResolveWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Super-resolve", area="right")
    widget.synchronous = True
    assert widget.image.value == "chris_PD" and "2.40 mm" in widget.status.value
    widget.method.value = "bspline"
    widget.run()
    result = layer_volume(viewer.layers["chris_PD (super-resolved)"])
    inplane = min(chris_pd.spacing)
    np.testing.assert_allclose(result.spacing, [inplane] * 3, rtol=1e-4)

    def extent(v: Volume) -> np.ndarray:  # world span of the voxel edges along each axis
        return np.asarray(v.shape) * np.asarray(v.spacing)

    assert np.all(np.abs(extent(result) - extent(chris_pd)) < inplane + 1e-6)
    assert result.shape[2] > 2.5 * chris_pd.shape[2]


def test_super_resolve_isotropic_scan_is_a_note(viewer: Any, gli: dict[str, Volume],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    told: list[str] = []
    monkeypatch.setattr(super_resolve_widget, "show_info", told.append)
    _add(viewer, gli["t1c"])
    widget = SuperResolveWidget(viewer)
    widget.synchronous = True
    before = _scans(viewer)
    widget.run()
    assert len(told) == 1 and "isotropic" in told[0] and _scans(viewer) == before
    assert widget.run_button.enabled


def test_super_resolve_cancel_adds_nothing_and_the_next_run_works(viewer: Any, chris_pd: Volume) -> None:
    _add(viewer, chris_pd)
    widget = SuperResolveWidget(viewer)
    widget.synchronous = True
    calls: list[str] = []
    shown = widget._progress

    def progress_then_cancel(done: int, total: int, text: str) -> None:
        calls.append(text)
        shown(done, total, text)
        if len(calls) == 1:
            widget.cancel()

    widget._progress = progress_then_cancel  # type: ignore[method-assign]
    before = _scans(viewer)
    widget.run()
    assert calls and _scans(viewer) == before and widget.run_button.enabled
    assert "Cancelled" in widget.status.value
    widget.method.value = "bspline"
    widget.run()
    assert "chris_PD (super-resolved)" in viewer.layers
