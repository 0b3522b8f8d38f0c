"""The main dock widgets' run functions on bad inputs (run under Xvfb).

For each case: exactly one notification (error or warning) naming the problem, no new layer,
the Run / Load button enabled again, and a valid run right after works (the viewer stays usable).
Widgets run synchronously; models are the tiny threshold card and the rule tumour card.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from bad_inputs.commands import write_tiny_card
from bad_inputs.corpus import ROWS, Case, build_corpus
from napari_brain_dl.core import io

pytestmark = pytest.mark.viewer


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    return {c.path.name: c for c in build_corpus(tmp_path_factory.mktemp("widget_corpus"))}


@pytest.fixture
def said(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every error / warning notification a widget shows."""
    from napari_brain_dl._napari.widgets import load_exam, run_model, task_panel

    messages: list[str] = []
    for module in (task_panel, run_model, load_exam):
        for name in ("show_error", "show_warning"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, messages.append)
    return messages


class _FirstOfTwo(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([0.5 - x[:, :1], x[:, :1] - 0.5], dim=1)


def _add(viewer: Any, volume: Any, name: str) -> Any:
    from napari.layers import Layer

    from napari_brain_dl._napari.layers import GEOMETRY, volume_to_layer_data

    volume.name = name
    layer = viewer.add_layer(Layer.create(*volume_to_layer_data(volume)))
    layer.metadata[GEOMETRY]["source_meta"].pop("path", None)  # no autosave beside the corpus
    return layer


def _record(case: str, widget: str, said: list[str]) -> None:
    text = re.sub(r"/\S*/", "", said[-1]) if said else ""  # file names without their folders
    ROWS.append((case, widget, "notified" if said else "SILENT", text[:150]))


LOAD_CASES = [("truncated.nii.gz", "truncated"), ("slice2d.nii.gz", "2D"), ("singular.nii.gz", "singular"),
              ("dicom_missing", "missing")]


def test_load_exam(make_napari_viewer: Any, corpus: dict[str, Case], said: list[str]) -> None:
    from napari_brain_dl._napari.widgets.load_exam import LoadExamWidget

    viewer = make_napari_viewer()
    before = len(viewer.layers)
    for file, problem in LOAD_CASES:
        widget = LoadExamWidget(viewer)
        widget.synchronous = True
        case = corpus[file]
        said.clear()
        if case.path.is_dir():
            widget.folder.value = case.path
        else:
            widget.files.value = [str(case.path)]
        widget.read_series()  # also read on change; the last notification is this read's
        _record(case.name, "Load exam", said)
        assert said and problem in said[-1] and file in said[-1] and "\n" not in said[-1], (file, said)
        assert len(viewer.layers) == before and widget.load_button.enabled
    again = LoadExamWidget(viewer)  # the viewer is still usable
    again.synchronous = True
    again.files.value = [str(corpus["good_t1.nii.gz"].path)]
    again.read_series()
    again.load()
    assert len(viewer.layers) > before


def test_run_model(make_napari_viewer: Any, corpus: dict[str, Case], said: list[str], tmp_path: Path) -> None:
    import yaml

    from napari_brain_dl._napari.widgets.run_model import RunModelWidget
    from napari_brain_dl.core.models import default_registry

    folder, pair_folder = tmp_path / "models", tmp_path / "pair"
    card = yaml.safe_load(Path(write_tiny_card(folder)).read_text())
    pair_folder.mkdir()
    torch.jit.script(_FirstOfTwo()).save(str(pair_folder / "pair.ts"))  # other bytes than tiny.ts
    pair = {**card, "id": "tiny-pair", "name": "Tiny pair", "inputs": ["T1", "T2"],
            "weights": {"file": "pair.ts"}}
    (pair_folder / "pair.yaml").write_text(yaml.safe_dump(pair))
    default_registry().add_folder(folder)
    default_registry().add_folder(pair_folder)
    ids = [c.id for c in default_registry().cards()]
    assert {"tiny-pair", "tiny-threshold"} <= set(ids), (ids, default_registry().folders())
    viewer = make_napari_viewer()
    good = _add(viewer, io.load(corpus["good_t1.nii.gz"].path), "t1")
    far = _add(viewer, io.load(corpus["far_grid.nii.gz"].path), "far")
    viewer.add_image(np.ones((16, 16), np.float32), name="photo2d")
    viewer.add_image(np.ones((3, 8, 8, 8), np.float32), name="movie4d")
    widget = RunModelWidget(viewer)
    widget.synchronous = True
    widget.model.value = "tiny-threshold"
    offered = set(widget.inputs[0].choices)
    for name in ("photo2d", "movie4d"):  # not even offered as an input
        ROWS.append((f"{name[-2:].upper()} layer", "Run model", "refused", "not offered as an input layer"))
    assert {"photo2d", "movie4d"}.isdisjoint(offered) and {"t1", "far"} <= offered
    widget.model.value = "tiny-pair"
    widget.inputs[0].value, widget.inputs[1].value = good.name, far.name
    before = len(viewer.layers)
    widget.run()
    _record("grids disagree (no overlap)", "Run model", said)
    assert len(said) == 1 and "grid" in said[0] and "\n" not in said[0] and len(viewer.layers) == before
    assert widget.run_button.enabled
    widget.model.value = "tiny-threshold"
    widget.inputs[0].value = good.name
    widget.run()  # still usable
    assert len(viewer.layers) == before + 1


SEGMENT_CASES = [("zeros.nii.gz", "good_t1.nii.gz", "empty"), ("chest_ct.nii.gz", "chest_ct.nii.gz", "brain"),
                 ("good_t1.nii.gz", "far_grid.nii.gz", "space")]


def test_segment_tumour(make_napari_viewer: Any, corpus: dict[str, Case], said: list[str],
                        rule_card: str) -> None:
    from napari_brain_dl._napari.widgets.segment_tumor import SegmentTumorWidget

    viewer = make_napari_viewer()
    widget = SegmentTumorWidget(viewer)
    widget.synchronous = True
    widget.device.value = "cpu"
    widget.add_model(rule_card)
    for flair, t1c, problem in SEGMENT_CASES:
        viewer.layers.clear()
        _add(viewer, io.load(corpus[flair].path), "flair")
        _add(viewer, io.load(corpus[t1c].path), "t1c")
        widget.flair.value, widget.t1c.value = "flair", "t1c"
        said.clear()
        widget.run()
        _record(corpus[flair if flair != "good_t1.nii.gz" else t1c].name, "Segment tumour", said)
        assert len(said) == 1 and problem in said[0] and "\n" not in said[0], said
        assert len(viewer.layers) == 2 and "tumor" not in viewer.layers and widget.run_button.enabled


def test_explain(make_napari_viewer: Any, corpus: dict[str, Case], said: list[str]) -> None:
    from napari_brain_dl._napari.widgets.explain import ExplainWidget

    viewer = make_napari_viewer()
    widget = ExplainWidget(viewer)
    widget.synchronous = True
    for flair, problem in (("zeros.nii.gz", "empty"), ("chest_ct.nii.gz", "brain")):
        viewer.layers.clear()
        _add(viewer, io.load(corpus[flair].path), "flair")
        widget.flair.value = "flair"
        said.clear()
        widget.run()
        _record(corpus[flair].name, "Explain", said)
        assert len(said) == 1 and problem in said[0] and "\n" not in said[0], said
        assert len(viewer.layers) == 1 and widget.run_button.enabled


def test_synthesize(make_napari_viewer: Any, corpus: dict[str, Case], said: list[str]) -> None:
    from napari_brain_dl._napari.widgets.synthesize import SynthesizeWidget

    viewer = make_napari_viewer()
    widget = SynthesizeWidget(viewer)
    widget.synchronous = True
    for t1c, t2, problem in (("zeros.nii.gz", None, "empty"), ("chest_ct.nii.gz", None, "brain"),
                             ("good_t1.nii.gz", "far_grid.nii.gz", "space")):
        viewer.layers.clear()
        _add(viewer, io.load(corpus[t1c].path), "t1c")
        if t2:
            _add(viewer, io.load(corpus[t2].path), "t2")
        widget.t1c.value, widget.t2.value = "t1c", "t2" if t2 else "(none)"
        widget.target.value, widget.method.value = "FLAIR", "histogram"
        before = len(viewer.layers)
        said.clear()
        widget.run()
        _record(corpus[t2 or t1c].name, "Synthesize", said)
        assert len(said) == 1 and problem in said[0] and "\n" not in said[0], said
        assert len(viewer.layers) == before and widget.run_button.enabled


def test_super_resolve(make_napari_viewer: Any, corpus: dict[str, Case], said: list[str]) -> None:
    from napari_brain_dl._napari.widgets.super_resolve import SuperResolveWidget

    viewer = make_napari_viewer()
    widget = SuperResolveWidget(viewer)
    widget.synchronous = True
    thick = io.load(corpus["zeros.nii.gz"].path)
    thick.affine[:3, 2] *= 3  # thick slices, so the refusal is about the content
    _add(viewer, thick, "zeros")
    viewer.add_image(np.ones((16, 16), np.float32), name="photo2d")
    assert widget.image.choices == ("zeros",)  # a 2D layer is not offered
    before = len(viewer.layers)
    widget.image.value = "zeros"
    widget.run()
    _record(corpus["zeros.nii.gz"].name, "Super-resolve", said)
    assert len(said) == 1 and "empty" in said[0] and "\n" not in said[0], said
    assert len(viewer.layers) == before and widget.run_button.enabled
