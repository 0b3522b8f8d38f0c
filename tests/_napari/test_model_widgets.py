"""Model manager and Run model widgets in a real viewer (run under Xvfb).

The run tests use tiny TorchScript models written to tmp_path (a threshold
and one that raises); the manager tests use the real mindgrab folder in
../shared/data, read in place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from napari_brain_dl._napari.layers import GEOMETRY, volume_to_layer_data
from napari_brain_dl._napari.widgets import model_manager, task_panel
from napari_brain_dl._napari.widgets.model_manager import ModelManagerWidget
from napari_brain_dl._napari.widgets.run_model import RunModelWidget
from napari_brain_dl.core.models import default_registry, trusted_hashes
from napari_brain_dl.core.volume import Volume


class _Threshold(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([0.5 - x[:, :1], x[:, :1] - 0.5], dim=1)


class _Boom(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("the tiny model failed on purpose")


def _card(model_id: str, weights: str) -> dict[str, Any]:
    return {"id": model_id, "name": f"Tiny {model_id}", "task": "segmentation", "inputs": ["T1"],
            "preprocessing": [{"op": "scale", "low": 0.0, "high": 1.0}], "postprocessing": [{"op": "argmax"}],
            "output": {"kind": "labels"},
            "labels": [{"value": 0, "name": "background", "color": [0, 0, 0]},
                       {"value": 1, "name": "bright", "color": [0, 255, 0]}],
            "architecture": {"type": "torchscript"}, "weights": {"file": weights},
            "inference": {"mode": "whole", "crop": "none"}, "license": "test", "metrics": {"dice": 1.0}}


@pytest.fixture
def tiny_models(tmp_path: Path) -> Path:
    """A user model folder with two TorchScript cards: 'tiny' (threshold) and 'boom' (raises)."""
    folder = tmp_path / "models"
    folder.mkdir()
    for model_id, module in (("tiny", _Threshold()), ("boom", _Boom())):
        torch.jit.script(module).save(str(folder / f"{model_id}.ts"))
        (folder / f"{model_id}.yaml").write_text(yaml.safe_dump(_card(model_id, f"{model_id}.ts")))
    pair = {**_card("pair", "tiny.ts"), "inputs": ["T1c", "FLAIR"]}  # thresholds its first input only
    (folder / "pair.yaml").write_text(yaml.safe_dump(pair))
    default_registry().add_folder(folder)
    return folder


@pytest.fixture
def scan_layer(make_napari_viewer: Any) -> tuple[Any, Any]:
    """A viewer holding one small anisotropic LPS scan with a bright box."""
    viewer = make_napari_viewer()
    data = np.zeros((20, 16, 12), np.float32)
    data[4:12, 3:9, 2:7] = 100.0
    affine = np.array([[-1.5, 0, 0, 30.0], [0, -1.0, 0, 20.0], [0, 0, 2.0, -10.0], [0, 0, 0, 1]])
    layer_data, kwargs, _ = volume_to_layer_data(Volume(data, affine, name="t1"))
    layer = viewer.add_image(layer_data, **kwargs)
    return viewer, layer


def _labels(viewer: Any) -> list[Any]:
    return [layer for layer in viewer.layers if layer._type_string == "labels"]


# -- model manager ----------------------------------------------------------------------
def test_manager_lists_shipped_cards(make_napari_viewer: Any) -> None:
    widget = ModelManagerWidget(make_napari_viewer())
    ids = [card.id for card in widget.cards()]
    assert {"mindgrab", "model5_gw_ae", "model21_104class"} <= set(ids)
    assert widget.table.data.to_list()[ids.index("mindgrab")][2] == "missing"
    assert list(widget.table.row_headers) == ids
    widget.model.value = "mindgrab"
    text = widget.details.value
    assert "Inputs (in order): 1. T1" in text and "not for diagnosis" in text and "brain" in text


def test_manager_adds_mindgrab_folder(make_napari_viewer: Any, data_dir: Path) -> None:
    widget = ModelManagerWidget(make_napari_viewer())
    widget.folder.value = data_dir / "brainchop_models" / "mindgrab"
    card = {c.id: c for c in widget.cards()}["mindgrab"]
    assert card.available
    assert widget.model.value == "mindgrab"
    assert {c.id: c for c in default_registry().cards()}["mindgrab"].available  # remembered


def test_manager_rejects_unknown_file(make_napari_viewer: Any, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    errors: list[str] = []
    monkeypatch.setattr(model_manager, "show_error", errors.append)
    (tmp_path / "junk.pth").write_bytes(b"not a model")
    widget = ModelManagerWidget(make_napari_viewer())
    widget.file.value = tmp_path / "junk.pth"
    assert len(errors) == 1 and "not a known model" in errors[0]


def test_manager_trust_toggle_persists(make_napari_viewer: Any, data_dir: Path) -> None:
    viewer = make_napari_viewer()
    widget = ModelManagerWidget(viewer)
    widget.folder.value = data_dir / "brainchop_models" / "mindgrab"
    widget.model.value = "mindgrab"
    questions: list[str] = []
    widget.confirm = lambda q: questions.append(q) or False  # the user says No
    widget.trust_button.clicked()
    assert not trusted_hashes() and "run Python code" in questions[0]
    widget.confirm = lambda q: True
    widget.trust_button.clicked()
    digest = model_manager.weights_digest(default_registry().get("mindgrab"))
    assert digest in trusted_hashes()
    again = ModelManagerWidget(viewer)  # a new widget reads the stored decision
    again.model.value = "mindgrab"
    assert again.trust_button.text == "Untrust"
    again.trust_button.clicked()  # untrusting needs no confirmation
    assert digest not in trusted_hashes()


def test_manager_does_not_show_a_self_trusting_card_as_trusted(make_napari_viewer: Any,
                                                               tmp_path: Path) -> None:
    """A card outside the package saying ``trusted: true`` vouches for itself: listed as untrusted."""
    torch.save({"weight": torch.zeros(2, 1, 1, 1, 1)}, tmp_path / "w.pth")
    card = {**_card("selfish", "w.pth"), "trusted": True}
    (tmp_path / "card.yaml").write_text(yaml.safe_dump(card))
    widget = ModelManagerWidget(make_napari_viewer())
    widget.folder.value = tmp_path
    ids = [c.id for c in widget.cards()]
    assert widget.table.data.to_list()[ids.index("selfish")][3] == "no"
    widget.model.value = "selfish"
    assert widget.trust_button.text == "Trust..." and widget.trust_button.enabled


# -- run model -------------------------------------------------------------------------
def test_run_model_adds_labels_with_provenance(scan_layer: tuple[Any, Any], tiny_models: Path,
                                               qtbot: Any) -> None:
    viewer, layer = scan_layer
    widget = RunModelWidget(viewer)
    viewer.window.add_dock_widget(widget)  # napari now resets its choices on every layer change
    widget.model.value = "tiny"
    assert [box.value for box in widget.inputs] == ["t1"]
    widget.device.value = "cpu"
    widget.run()  # threaded, as in the viewer
    qtbot.waitUntil(lambda: len(_labels(viewer)) == 1, timeout=30000)
    result = _labels(viewer)[0]
    assert result.data.shape == layer.data.shape
    np.testing.assert_allclose(result.scale, layer.scale)
    np.testing.assert_allclose(result.translate, layer.translate)
    np.testing.assert_array_equal(result.data, (layer.data > 50).astype(np.uint8))
    np.testing.assert_allclose(result.metadata[GEOMETRY]["source_affine"],
                               layer.metadata[GEOMETRY]["source_affine"])
    prov = result.metadata["provenance"]
    assert prov["model_id"] == "tiny" and prov["device"] == "cpu" and len(prov["weights_sha256"]) == 64
    assert {"parameters", "package_version", "seconds"} <= set(prov)
    assert tuple(result.colormap.map(1)[:3]) == pytest.approx((0.0, 1.0, 0.0))
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=5000)
    assert widget.model.value == "tiny" and widget.inputs[0].value == "t1"  # choices survived the new layer


def test_model_loaded_once(scan_layer: tuple[Any, Any], tiny_models: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    from napari_brain_dl.core import inference

    loads: list[str] = []
    real = inference.load_model
    monkeypatch.setattr(inference, "load_model",
                        lambda card, *a, **k: loads.append(card.id) or real(card, *a, **k))
    inference.clear_cache()
    viewer, _ = scan_layer
    widget = RunModelWidget(viewer)
    widget.synchronous, widget.model.value, widget.device.value = True, "tiny", "cpu"
    widget.run()
    widget.run()
    assert len(_labels(viewer)) == 2 and loads == ["tiny"]


def test_cancel_leaves_no_layer(scan_layer: tuple[Any, Any], tiny_models: Path, qtbot: Any,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    viewer, _ = scan_layer
    widget = RunModelWidget(viewer)
    widget.model.value = "tiny"
    widget.synchronous = True
    with monkeypatch.context() as patch:  # Cancel pressed at the first progress report
        patch.setattr(RunModelWidget, "_progress", lambda self, done, total, text: self.cancel())
        widget.run()
    assert not _labels(viewer) and widget.run_button.enabled
    widget.synchronous = False  # threaded: Cancel right after Run
    widget.run()
    widget.cancel()
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=30000)
    assert not _labels(viewer) and len(viewer.layers) == 1


def test_failing_model_notifies_and_adds_nothing(scan_layer: tuple[Any, Any], tiny_models: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    viewer, _ = scan_layer
    errors: list[str] = []
    monkeypatch.setattr(task_panel, "show_error", errors.append)
    widget = RunModelWidget(viewer)
    widget.synchronous = True
    widget.model.value = "boom"
    widget.run()
    assert len(viewer.layers) == 1 and widget.run_button.enabled
    assert len(errors) == 1 and "failed on purpose" in errors[0]
    widget.model.value = "tiny"  # the viewer is still usable
    widget.run()
    assert len(_labels(viewer)) == 1


def test_inputs_follow_card_order(scan_layer: tuple[Any, Any], tiny_models: Path) -> None:
    viewer, t1 = scan_layer
    flair = viewer.add_image(np.where(t1.data > 0, 0.0, 100.0).astype(np.float32), name="flair",
                             scale=t1.scale, translate=t1.translate, metadata=dict(t1.metadata))
    t1c = viewer.add_image(np.asarray(t1.data), name="T1c", scale=t1.scale, translate=t1.translate,
                           metadata=dict(t1.metadata))
    widget = RunModelWidget(viewer)
    widget.synchronous = True
    widget.model.value = "pair"
    assert [box.label for box in widget.inputs] == ["1. T1c", "2. FLAIR"]
    assert [box.value for box in widget.inputs] == ["T1c", "flair"]  # matched by name, in card order
    widget.run()
    np.testing.assert_array_equal(_labels(viewer)[0].data, (t1c.data > 50).astype(np.uint8))
    assert flair.name == "flair"


def test_cards_sharing_a_name_are_both_listed(scan_layer: tuple[Any, Any], tiny_models: Path) -> None:
    twin = {**_card("tiny-twin", "tiny.ts"), "name": "Tiny tiny"}  # the same display name as 'tiny'
    (tiny_models / "twin.yaml").write_text(yaml.safe_dump(twin))
    default_registry().add_folder(tiny_models)
    widget = RunModelWidget(scan_layer[0])
    box = widget.model.native  # what the user sees in the list
    shown = [box.itemText(i) for i in range(box.count())]
    assert {"Tiny tiny [tiny]", "Tiny tiny [tiny-twin]", "Tiny boom"} <= set(shown)
    widget.model.value = "tiny-twin"
    assert widget.card().id == "tiny-twin"
