"""`synthesize`: a stamped NIfTI on the first input's grid, JSON provenance, clear failures."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from toy_volumes import as_ras, toy_head

from napari_brain_dl.cli import main
from napari_brain_dl.core import io


@pytest.fixture(scope="module")
def exam(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Toy T1c (LPS), T1 (stored RAS) and FLAIR files of one 'exam'."""
    folder = tmp_path_factory.mktemp("exam")
    paths = {}
    for name, vol in (("t1c", toy_head(0)), ("t1", as_ras(toy_head(1))), ("flair", toy_head(2))):
        paths[name] = str(io.save(vol, folder / f"{name}.nii.gz"))
    return paths


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["synthesize", *args, "--device", "cpu"])
    out, err = capsys.readouterr()
    return code, out, err


def test_writes_stamped_file_on_first_input_grid(
    exam: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, report = tmp_path / "case_flair_synthetic.nii.gz", tmp_path / "case.json"
    code, stdout, err = _run(["--t1", exam["t1"], "--t1c", exam["t1c"], "--target", "FLAIR",
                              "-o", str(out), "--json", str(report)], capsys)
    assert code == 0, err
    assert "SYNTHETIC FLAIR from T1+T1c" in stdout and "used T1, T1c" in stdout
    img, first = nib.load(str(out)), nib.load(exam["t1"])  # --t1 came first: its (RAS) grid
    assert img.shape == first.shape and np.array_equal(img.affine, first.affine)
    assert img.header["descrip"].tobytes().rstrip(b"\0") == (
        b"SYNTHETIC FLAIR from T1+T1c by synth-mri, units: brain z-score")
    assert img.header["intent_name"].tobytes().rstrip(b"\0") == b"SYNTHETIC"
    data = json.loads(report.read_text())
    assert data["synthetic"] is True and data["method"] == "synth-mri" and "z-score" in data["units"]
    assert data["provenance"]["weights_sha256"] and data["provenance"]["synthetic"] is True
    assert data["sources"] == ["T1", "T1c"] and data["output_grid"].startswith("T1 ")
    sidecar = json.loads(Path(f"{out}.json").read_text())
    assert "SYNTHETIC" in json.dumps(sidecar) and '"synthetic": true' in json.dumps(sidecar)


def test_histogram_baseline_and_argv_order(
    exam: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "t2_synthetic.nii"
    code, _, err = _run(["--t1c", exam["t1c"], "--t1", exam["t1"], "--target", "t2", "--model",
                         "histogram", "-o", str(out)], capsys)
    assert code == 0, err
    img = nib.load(str(out))
    assert np.array_equal(img.affine, nib.load(exam["t1c"]).affine)  # --t1c came first
    assert img.header["descrip"].tobytes().startswith(b"SYNTHETIC T2 from T1 by histogram")


def test_former_model_id_still_runs(
    exam: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "old_synthetic.nii.gz"
    code, stdout, err = _run(["--t1", exam["t1"], "--target", "t2", "--model", "synth-t2-from-t1",
                              "-o", str(out)], capsys)
    assert code == 0, err
    assert "SYNTHETIC T2 from T1 by synth-mri" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--flair", "FLAIR", "--target", "flair", "-o", "x_synthetic.nii.gz"], "already given"),
        (["--t1c", "T1C", "--target", "flair", "-o", "x.nii.gz"], "x_synthetic.nii.gz"),
        (["--t1c", "T1C", "--target", "flair", "-o", "x_synthetic.nrrd"], "NIfTI only"),
        (["--t1", "T1", "--flair", "FLAIR", "--target", "t1c", "-o", "x_synthetic.nii.gz"],
         "T1c is never synthesised"),
        (["--t1", "T1", "--target", "flair", "--model", "brats-tumor-seg", "-o", "x_synthetic.nii.gz"],
         "not a synthesis model"),
        (["--t1c", "FAR", "--t1", "T1", "--target", "flair", "-o", "x_synthetic.nii.gz"], "different parts"),
        (["--t1c", "FLAT", "--target", "flair", "-o", "x_synthetic.nii.gz"], "2D"),
        (["--target", "flair", "-o", "x_synthetic.nii.gz"], "at least one"),
    ],
)
def test_bad_input_one_sentence_nothing_written(
    exam: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    far = toy_head(1)
    far.affine[:3, 3] += 400.0
    extra = {"FAR": str(io.save(far, tmp_path / "far.nii.gz")), "T1C": exam["t1c"], "T1": exam["t1"],
             "FLAIR": exam["flair"]}
    flat = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((64, 64, 1), np.float32), np.eye(4)), str(flat))
    extra["FLAT"] = str(flat)
    before = set(tmp_path.iterdir())
    args = [extra.get(a, str(tmp_path / a) if a.startswith("x") else a) for a in args]
    code, _, err = _run([*args, "--json", str(tmp_path / "r.json")], capsys)
    assert code == 3
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert set(tmp_path.iterdir()) == before


def test_refuses_to_overwrite(
    exam: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "f_synthetic.nii.gz"
    out.write_bytes(b"keep")
    code, _, err = _run(["--t1c", exam["t1c"], "--target", "flair", "--model", "histogram", "-o", str(out)],
                        capsys)
    assert code == 3 and "--overwrite" in err and out.read_bytes() == b"keep"
