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


def test_report_takes_the_labels_the_reader_corrected(viewer: Any, widget: ReportWidget,
                                                      tmp_path: Path) -> None:
    """The automatic labels, then a corrected copy: the report measures the corrected one."""
    from napari_brain_dl._napari.widgets.tumor_clicks import TUMOR_KIND
    from napari_brain_dl._napari.widgets.tumor_results import touch
    from napari_brain_dl.core.report import lesion_summary
    from napari_brain_dl.core.tasks.measure import tumor_measurements

    auto = viewer.layers["tumor"]
    fixed = np.array(auto.data)
    fixed[fixed == 2] = 0  # the reader erased the oedema
    meta = {"provenance": dict(auto.metadata["provenance"]), TUMOR_KIND: "brats", "brain_dl_edited": True}
    corrected = viewer.add_labels(fixed, name="tumor (corrected)", scale=auto.scale, translate=auto.translate,
                                  metadata={**auto.metadata, **meta})
    touch(corrected)
    viewer.layers.move(viewer.layers.index(corrected), 0)  # list order must not matter
    assert widget.contents.value.endswith("labels 'tumor (corrected)', 1 heatmap(s)")
    widget.output.value, widget.pdf.value = str(tmp_path / "r.html"), False
    widget.run()
    text = (tmp_path / "r.html").read_text()
    m = tumor_measurements(widget.exam.labels)
    assert m["edema_ml"] == 0
    assert "Labels reported: layer &#x27;tumor (corrected)&#x27; (corrected by the reader)" in text
    assert lesion_summary(m).replace(">", "&gt;") in text and ">= 10 mm" in lesion_summary(m)
    # every input has a sha256: of its file when it exists, else of its voxel data
    assert set(widget.exam.inputs) == {"flair", "t1c", "labels"}
    assert all(len(e["sha256"]) == 64 for e in widget.exam.inputs.values())
    for entry in widget.exam.inputs.values():
        assert entry["sha256"][:16] in text


def test_inputs_hash_the_files_that_exist(viewer: Any, data_dir: Path, tmp_path: Path) -> None:
    from napari_brain_dl.core.provenance import sha256_file

    path = data_dir / "brats_gli_00001" / "t2f.nii.gz"
    viewer.add_layer(Layer.create(*volume_to_layer_data(io.load(path))))
    w = ReportWidget(viewer)
    w.synchronous, w.pdf.value, w.output.value = True, False, str(tmp_path / "r.html")
    w.run()
    assert w.exam.inputs["t2f"] == {"path": str(path.resolve()), "sha256": sha256_file(path)}
