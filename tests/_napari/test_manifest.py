"""The manifest is valid and every python_name imports (cheap imports, no typos)."""

from __future__ import annotations

import importlib
import socket
from pathlib import Path

import numpy as np
import pytest
import yaml

MANIFEST = Path(__file__).resolve().parents[2] / "napari_brain_dl" / "napari.yaml"


def _python_names() -> list[str]:
    manifest = yaml.safe_load(MANIFEST.read_text())
    return [c["python_name"] for c in manifest["contributions"]["commands"]]


@pytest.mark.parametrize("python_name", _python_names())
def test_python_name_imports(python_name: str) -> None:
    module, _, attr = python_name.partition(":")
    assert callable(getattr(importlib.import_module(module), attr))


def test_manifest_validates() -> None:
    from npe2 import PluginManifest

    manifest = PluginManifest.from_file(MANIFEST)
    assert {w.display_name for w in manifest.contributions.widgets} >= {"Load exam", "Display"}
    assert manifest.contributions.sample_data[0].display_name == "Brain exam (MNI152 + simulated lesion)"


def test_sample_exam_needs_no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the sample exam tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("NILEARN_DATA", str(tmp_path))  # empty: nothing cached to fall back on
    from napari_brain_dl._napari.sample_data import brain_exam

    (_image, image_kw, kind), (labels, labels_kw, labels_kind) = brain_exam()
    assert (kind, labels_kind) == ("image", "labels")
    assert "simulated" in image_kw["name"] and "simulated" in labels_kw["name"]
    assert image_kw["metadata"]["brain_dl_geometry"]["source_meta"]["simulated"] is True
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    assert list(tmp_path.iterdir()) == []
    from napari.layers import Layer

    assert Layer.create(labels, labels_kw, labels_kind).name == "simulated lesion"
