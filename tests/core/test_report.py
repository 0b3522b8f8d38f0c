"""Exam report: self-contained HTML, radiological orientation, volumes, verdicts, identifiers, PDF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_brain_dl.core import io
from napari_brain_dl.core.provenance import build_record, write_sidecar
from napari_brain_dl.core.report import STATEMENT, build_html, build_pdf, exam_from_files
from napari_brain_dl.core.report_figures import png, shown, slice_figure
from napari_brain_dl.core.volume import Volume


def _half(vol: Volume, name: str) -> Volume:
    affine = vol.affine.copy()
    affine[:3, :3] *= 2
    return Volume(np.ascontiguousarray(vol.data[::2, ::2, ::2]), affine, name)


@pytest.fixture(scope="module")
def files(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """brats_gli_00001 at 2 mm: FLAIR, T1c, the BraTS 2023 labels, a heatmap on the tumour with checks."""
    folder = tmp_path_factory.mktemp("patient_0042")
    src = data_dir / "brats_gli_00001"
    out = {}
    for name, file in (("flair", "t2f"), ("t1c", "t1c"), ("labels", "seg-BraTS23_1")):
        out[name] = str(io.save(_half(io.load(src / f"{file}.nii.gz"), name), folder / f"{name}.nii.gz"))
    labels = io.load(out["labels"])
    centre = np.argwhere(np.asarray(labels.data) > 0).mean(axis=0)
    grid = np.indices(labels.shape).astype(np.float32)
    blob = np.exp(-sum((grid[i] - centre[i]) ** 2 for i in range(3)) / 50.0).astype(np.float32)
    out["heatmap"] = str(io.save(labels.with_data(blob), folder / "gradcam.nii.gz"))
    checks = {"randomisation": {"name": "randomisation", "value": 0.12, "verdict": "pass",
                                "sentence": "The map changes when the weights are randomised."},
              "deletion_insertion": {"name": "deletion_insertion", "value": 0.03, "verdict": "warn",
                                     "sentence": "Deleting salient voxels barely beats a random order."}}
    record = build_record(command="explain", options={}, inputs={"flair": out["flair"]},
                          outputs={"output": out["heatmap"]},
                          result={"model_id": "tumor-present", "weights_sha256": "ab" * 32,
                                  "method": "gradcam"},
                          extra={"explanation": {"method": "gradcam", "checks": checks}})
    write_sidecar(out["heatmap"], record)
    smaller = labels.with_data(np.where(np.asarray(labels.data) == 2, 0, labels.data).astype(np.uint8))
    out["earlier"] = str(io.save(smaller, folder / "earlier_labels.nii.gz"))
    return out


def test_overlay_on_screen_right_for_left_hemisphere_tumour(files: dict[str, str]) -> None:
    exam = exam_from_files([("FLAIR", files["flair"])], labels=files["labels"])
    labels = exam.labels
    assert labels is not None
    centre = np.argwhere(np.asarray(labels.data) > 0).mean(axis=0)
    assert (labels.affine @ [*centre, 1.0])[0] < 0  # RAS+: x < 0 is the patient's left
    data, _ = shown(labels)
    assert np.argwhere(data > 0)[:, 2].mean() > data.shape[2] / 2  # display columns run R -> L
    k = int(np.argmax((data > 0).sum(axis=(1, 2))))
    image = _decode(png(slice_figure(exam, k)))  # panels: FLAIR | FLAIR + labels
    right = image[:, image.shape[1] // 2:, :3]
    green = (right[..., 1] > 0.45) & (right[..., 0] < 0.35) & (right[..., 2] < 0.35)
    assert green.sum() > 50 and np.argwhere(green)[:, 1].mean() > right.shape[1] / 2


def _decode(data: bytes) -> np.ndarray:
    import io as _io

    import matplotlib.image as mpimg

    return mpimg.imread(_io.BytesIO(data), format="png")


def test_html_is_self_contained_with_volumes_verdicts_and_no_identifiers(files: dict[str, str]) -> None:
    exam = exam_from_files([("FLAIR", files["flair"]), ("T1c", files["t1c"])], labels=files["labels"],
                           heatmaps=[files["heatmap"]], synthetic=["T1c"], patient_id="PAT-0042",
                           history=[("2023-01-02", files["earlier"])], date="2023-06-30")
    text = build_html(exam)
    assert text.startswith("<!DOCTYPE html>") and STATEMENT in text
    assert "<script" not in text and "http://" not in text and "https://" not in text and "<link" not in text
    assert text.count("data:image/png;base64,") >= 3
    m = exam.measurements()
    assert m is not None and f"{m['whole_tumor_ml']:.2f}" in text and "Whole tumour" in text
    assert ">pass<" in text and ">warn<" in text and "tumor-present" in text
    assert "T1c (SYNTHETIC)" in text and "Volumes over time" in text and "2023-01-02" in text
    assert "PAT-0042" not in text and "patient_0042" not in text  # neither the id nor the paths
    shown_ids = build_html(exam_from_files([("FLAIR", files["flair"])], patient_id="PAT-0042",
                                           include_identifiers=True))
    assert "PAT-0042" in shown_ids and "patient_0042" in shown_ids


def test_pdf(files: dict[str, str], tmp_path: Path) -> None:
    exam = exam_from_files([("FLAIR", files["flair"])], labels=files["labels"], heatmaps=[files["heatmap"]])
    path = build_pdf(exam, tmp_path / "r.pdf")
    data = path.read_bytes()
    assert data.startswith(b"%PDF") and data.count(b"/Type /Page") >= 3
