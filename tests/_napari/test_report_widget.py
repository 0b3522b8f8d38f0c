"""The "Report" widget in a real viewer (Xvfb): layers with provenance -> HTML + PDF, nothing replaced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from napari.layers import Layer

from napari_brain_dl._napari.layers import volume_to_layer_data
from napari_brain_dl._napari.widgets.report import ReportWidget
from napari_brain_dl.core import io
from napari_brain_dl.core.volume import Volume


@pytest.fixture(scope="module")
def exam(data_dir: Path) -> dict[str, Volume]:
    out = {}
    for name, file in (("flair", "t2f"), ("t1c", "t1c"), ("tumor", "seg-BraTS23_1")):
        vol = io.load(data_dir / "brats_gli_00001" / f"{file}.nii.gz")
        affine = vol.affine.copy()
        affine[:3, :3] *= 3
        out[name] = Volume(np.ascontiguousarray(vol.data[::3, ::3, ::3]), affine, name,
                           meta={"path": f"/hospital/PATIENT_SMITH/{file}.nii.gz"})
    return out


@pytest.fixture
def widget(viewer: Any, exam: dict[str, Volume]) -> ReportWidget:
    viewer.add_layer(Layer.create(*volume_to_layer_data(exam["flair"])))
    viewer.add_layer(Layer.create(*volume_to_layer_data(exam["t1c"], metadata={"synthetic": True})))
    prov = {"model_id": "brats-tumor-seg", "weights_sha256": "cd" * 32, "device": "cpu"}
    tumor = volume_to_layer_data(exam["tumor"], "labels", metadata={"provenance": prov})
    viewer.add_layer(Layer.create(*tumor))
    heat = exam["flair"].with_data(np.asarray(exam["tumor"].data, np.float32))
    checks = [{"name": "randomisation", "value": 0.1, "verdict": "pass", "sentence": "changes"}]
    prov = {"model_id": "tumor-present", "method": "gradcam"}
    meta = {"explain": True, "checks": checks, "provenance": prov}
    viewer.add_layer(Layer.create(*volume_to_layer_data(heat, "image", name="heatmap", metadata=meta)))
    w = ReportWidget(viewer)
    viewer.window.add_dock_widget(w, name="Report", area="right")
    w.synchronous = True
    return w


def test_report_from_layers(widget: ReportWidget, tmp_path: Path) -> None:
    assert widget.contents.value == "2 scan(s), labels 'tumor', 1 heatmap(s)"
    widget.run()
    assert "Choose where" in widget.status.value and not widget.written
    widget.output.value = str(tmp_path / "exam_report")
    widget.run()
    html, pdf = tmp_path / "exam_report.html", tmp_path / "exam_report.pdf"
    assert widget.written == [html, pdf] and pdf.read_bytes().startswith(b"%PDF")
    text = html.read_text()
    assert "brats-tumor-seg" in text and ">pass<" in text and "t1c (SYNTHETIC)" in text
    assert "PATIENT_SMITH" not in text and "Whole tumour" in text
    assert widget.run_button.enabled and not widget.cancel_button.enabled

    before = html.read_bytes()
    widget.run()  # the same name again: refused, nothing replaced
    assert "already exists" in widget.status.value and html.read_bytes() == before


def test_identifiers_only_when_asked(widget: ReportWidget, tmp_path: Path) -> None:
    widget.output.value = str(tmp_path / "r.html")
    widget.pdf.value = False
    widget.identifiers.value, widget.patient_id.value = True, "SMITH^JOHN"
    widget.run()
    text = (tmp_path / "r.html").read_text()
    assert "SMITH^JOHN" in text and "PATIENT_SMITH" in text and not (tmp_path / "r.pdf").exists()
