"""`click-segment` as the headless interaction protocol: prompts file, initial labels, clear failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_brain_dl.cli import main
from napari_brain_dl.core import io
from napari_brain_dl.core.image_metrics import dice

CASE = "brats2015_flair_t1c/brats_2013_pat0006_1"  # held out by both tumour models


@pytest.fixture(scope="module")
def exam(data_dir: Path) -> dict[str, str]:
    folder = data_dir / CASE
    if not folder.is_dir():
        pytest.skip(f"{folder} is missing")
    return {
        "flair": str(folder / "Flair_subtrMeanDivStd.nii.gz"),
        "t1c": str(folder / "T1c_subtrMeanDivStd.nii.gz"),
        "ref": str(folder / "OTMultiClass.nii.gz"),
    }


def _click_segment(exam: dict[str, str], out: Path, *options: str) -> int:
    """`click-segment` on the exam's FLAIR and T1c with `options`, on the CPU."""
    return main(["click-segment", "--flair", exam["flair"], "--t1c", exam["t1c"], *options,
                 "-o", str(out), "--device", "cpu"])


def _ref(exam: dict[str, str]) -> np.ndarray:
    raw = np.rint(np.asarray(io.load(exam["ref"]).data)).astype(int)
    return np.array([0, 1, 2, 1, 3], np.uint8)[raw]


def test_initial_labels_refined_by_a_prompts_file_keep_sub_regions(
    exam: dict[str, str], tmp_path: Path
) -> None:
    from scipy import ndimage

    ref = _ref(exam)
    flair = io.load(exam["flair"])
    big = np.where((ref == 0) & ndimage.binary_dilation(ref > 0, iterations=2), 2, ref).astype(np.uint8)
    init = tmp_path / "init.nii.gz"
    io.save(flair.with_data(big), init)
    # a lasso tracing the expert outline on one axial slice, a box on another, a negative
    # scribble across the shell, all in voxel coordinates; the lasso is given in mm
    from skimage import measure

    k = int(np.argmax((ref > 0).sum(axis=(0, 1))))
    contour = max(measure.find_contours((ref[:, :, k] > 0).astype(float), 0.5), key=len)[::3]
    lasso_mm = [(flair.affine @ np.array([x, y, k, 1.0]))[:3].tolist() for x, y in contour]
    idx = np.argwhere(ref[:, :, k - 6] > 0)
    box = [[*(idx.min(0) - 1).tolist(), k - 6], [*(idx.max(0) + 1).tolist(), k - 6]]
    shell = np.argwhere((big[:, :, k + 8] > 0) & (ref[:, :, k + 8] == 0))[0]
    prompts = [
        {"kind": "box", "points": box},
        {
            "kind": "scribble",
            "sign": "-",
            "points": [[*shell.tolist(), k + 8], [*shell.tolist(), k + 8]],
            "radius_mm": 1.0,
        },
        {"kind": "lasso", "sign": "+", "coords": "mm", "points": lasso_mm},
    ]
    pfile = tmp_path / "prompts.json"
    pfile.write_text(json.dumps(prompts))
    out, js = tmp_path / "labels.nii.gz", tmp_path / "labels.json"
    code = _click_segment(exam, out, "--init", str(init), "--prompts", str(pfile), "--json", str(js))
    assert code == 0
    result = io.load(out)
    assert result.same_grid(flair) and set(np.unique(result.data).tolist()) <= {0, 1, 2, 3}
    labels = np.asarray(result.data).astype(np.uint8)
    on = labels[:, :, k] > 0
    from napari_brain_dl.core.tasks.tumor_prompts import polygon_mask

    assert np.array_equal(on, polygon_mask(np.array(contour), on.shape))  # the lasso is followed on its slice
    assert dice(labels > 0, ref > 0) > dice(big > 0, ref > 0)
    kept = (labels > 0) & (ref > 0)
    assert (labels[kept] == ref[kept]).mean() > 0.99  # sub-regions kept where the tumour stays
    report = json.loads(js.read_text())
    assert [s["what"] for s in report["interactions"]] == ["box WT", "scribble WT -", "lasso WT"]
    assert report["measurements"]["enhancing_ml"] > 0 and report["provenance"]["initial_labels"] == str(init)


def test_clicks_from_nothing_give_whole_tumour(exam: dict[str, str], tmp_path: Path) -> None:
    from scipy import ndimage

    ref = _ref(exam)
    d = ndimage.distance_transform_edt(ref > 0)
    inner = np.unravel_index(int(d.argmax()), d.shape)
    out = tmp_path / "wt.nii.gz"
    code = _click_segment(exam, out, "--fg", ",".join(map(str, inner)))
    labels = np.asarray(io.load(out).data)
    assert code == 0 and set(np.unique(labels).tolist()) == {0, 2} and dice(labels > 0, ref > 0) > 0.85


@pytest.mark.parametrize(
    ("prompts", "words"),
    [
        ([{"kind": "click", "points": [[300, 10, 10]]}], "outside the scan"),
        ([{"kind": "lasso", "points": [[100, 100, 70], [110, 100, 70]]}], "at least three points"),
        ([{"kind": "box", "points": [[100, 100, 70], [100, 100, 70]]}], "zero size"),
        ("not json", "not valid JSON"),
    ],
)
def test_bad_prompts_are_one_sentence_and_nothing_is_written(
    exam: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], prompts: object, words: str
) -> None:
    pfile = tmp_path / "p.json"
    pfile.write_text(prompts if isinstance(prompts, str) else json.dumps(prompts))
    out = tmp_path / "labels.nii.gz"
    code = _click_segment(exam, out, "--prompts", str(pfile))
    err = capsys.readouterr().err.strip()
    assert code == 3 and len(err.splitlines()) == 1 and words in err and not out.exists(), err


def test_initial_labels_on_another_grid_are_refused(
    exam: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flair = io.load(exam["flair"])
    other = tmp_path / "other.nii.gz"
    from napari_brain_dl.core.volume import Volume

    io.save(Volume(np.zeros((60, 60, 40), np.uint8), flair.affine, "x", {}), other)
    out = tmp_path / "labels.nii.gz"
    out.write_bytes(b"keep")
    code = _click_segment(exam, out, "--fg", "120,120,70", "--init", str(other), "--overwrite")
    err = capsys.readouterr().err.strip()
    assert code == 3 and "not on the exam's grid" in err and out.read_bytes() == b"keep", err


def test_init_auto_refines_the_automatic_result(exam: dict[str, str], tmp_path: Path) -> None:
    from skimage import measure

    from napari_brain_dl.core.tasks.tumor_prompts import polygon_mask

    ref = _ref(exam)
    k = int(np.argmax((ref == 3).sum(axis=(0, 1))))
    contour = max(measure.find_contours((ref[:, :, k] == 3).astype(float), 0.5), key=len)[::2]
    pfile = tmp_path / "p.json"
    pfile.write_text(json.dumps({"prompts": [
        {"kind": "lasso", "region": "ET", "points": [[x, y, k] for x, y in contour.tolist()]}]}))
    out, js = tmp_path / "labels.nii.gz", tmp_path / "labels.json"
    code = _click_segment(exam, out, "--init", "auto", "--prompts", str(pfile), "--json", str(js))
    assert code == 0
    labels = np.asarray(io.load(out).data).astype(np.uint8)
    assert set(np.unique(labels).tolist()) == {0, 1, 2, 3}
    assert np.array_equal(labels[:, :, k] == 3, polygon_mask(contour, labels.shape[:2]))
    report = json.loads(js.read_text())
    assert report["provenance"]["initial_labels"] == "automatic"
    assert report["provenance"]["automatic"]["model_id"] == "brats-tumor-seg"
    assert report["measurements"]["tumor_core_ml"] > report["measurements"]["enhancing_ml"] > 0


def test_without_t1c_t1_stands_in_for_the_click_model(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A FLAIR + T1 exam (no contrast agent) that no click model trained on: clicks work with T1 in
    T1c's place and say so; FLAIR alone is one sentence, nothing written."""
    from scipy import ndimage

    folder = data_dir / "brats18_flair_t1_wt" / "case_3"
    if not folder.is_dir():
        pytest.skip(f"{folder} is missing")
    flair, t1 = str(folder / "flair.nii.gz"), str(folder / "t1.nii.gz")
    ref = np.asarray(io.load(folder / "whole_tumor.nii.gz").data) > 0
    d = ndimage.distance_transform_edt(ref)
    inner = ",".join(map(str, np.unravel_index(int(d.argmax()), d.shape)))
    out, report = tmp_path / "wt.nii.gz", tmp_path / "wt.json"
    code = main(["click-segment", "--flair", flair, "--t1", t1, "--fg", inner, "-o", str(out),
                 "--json", str(report), "--device", "cpu"])
    labels = np.asarray(io.load(out).data)
    result = json.loads(report.read_text())
    assert code == 0 and set(np.unique(labels).tolist()) == {0, 2}
    assert dice(labels > 0, ref) > 0.8
    assert result["provenance"]["click_model_t1c_input"] == "T1"
    assert result["provenance"]["inputs"] == {"FLAIR": flair, "T1": t1}
    assert any("T1 stands in" in note for note in result["notes"])
    capsys.readouterr()
    alone = tmp_path / "alone.nii.gz"
    code = main(["click-segment", "--flair", flair, "--fg", inner, "-o", str(alone), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 3 and len(err.splitlines()) == 1 and "Neither T1c nor T1" in err, err
    assert not alone.exists()
