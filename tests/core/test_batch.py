"""Cohort discovery and the Dask batch: resumable, failures isolated, same CSV after an interruption."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from napari_brain_dl.core import io
from napari_brain_dl.core.batch import CSV_NAME, DONE, run_batch
from napari_brain_dl.core.cohort import bids_contrast, discover, read_cohort, subject_files
from napari_brain_dl.core.jobs.rerun import rerun
from napari_brain_dl.core.progress import CancelToken
from napari_brain_dl.core.provenance import read_sidecar, sidecar_path


def _half(src: Path, dst: Path) -> None:
    """Every other voxel, affine scaled: a 2 mm copy that still looks like a head."""
    vol = io.load(src)
    affine = vol.affine.copy()
    affine[:3, :3] *= 2
    io.save(type(vol)(np.ascontiguousarray(vol.data[::2, ::2, ::2]), affine, vol.name), dst)


def build_cohort(data_dir: Path, root: Path) -> Path:
    """Four subjects, one folder each: BraTS 2023 case, two BraTS 2015 cases, one truncated FLAIR."""
    gli, b15 = data_dir / "brats_gli_00001", data_dir / "brats2015_flair_t1c"
    plan = {
        "case_a": [(gli / "t2f.nii.gz", "t2f.nii.gz"), (gli / "t1c.nii.gz", "t1c.nii.gz"),
                   (gli / "t1n.nii.gz", "t1n.nii.gz")],
        "case_b": [(b15 / "brats_2013_pat0003_1" / f"{c}_subtrMeanDivStd.nii.gz", f"{c}.nii.gz")
                   for c in ("Flair", "T1c")],
        "case_c": [(b15 / "brats_2013_pat0004_1" / f"{c}_subtrMeanDivStd.nii.gz", f"{c}.nii.gz")
                   for c in ("Flair", "T1c")],
    }
    for subject, files in plan.items():
        (root / subject).mkdir(parents=True)
        for src, name in files:
            _half(src, root / subject / name)
    broken = root / "case_d_broken"
    broken.mkdir()
    (broken / "t1c.nii.gz").write_bytes((root / "case_a" / "t1c.nii.gz").read_bytes())
    (broken / "flair.nii.gz").write_bytes((root / "case_a" / "t2f.nii.gz").read_bytes()[:3000])
    (root / "case_a" / "seg.nii.gz").write_bytes(b"not a scan")  # a label file: not an input
    return root


@pytest.fixture(scope="module", autouse=True)
def _inproc_on_loopback() -> Iterator[None]:
    """Name inproc:// addresses after 127.0.0.1: dask would otherwise probe 8.8.8.8 for this host's IP."""
    from distributed.comm import inproc

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(inproc.global_manager, "_ip", "127.0.0.1")
        yield


@pytest.fixture(scope="module")
def cohort(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_cohort(data_dir, tmp_path_factory.mktemp("cohort"))


@pytest.fixture(scope="module")
def full_run(cohort: Path, rule_card: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("full")
    result = run_batch(cohort, out, "segment", {"model": rule_card}, processes=False)
    assert not result.interrupted and result.ran == 4 and result.failed == 1
    return out


def test_discover_folders(cohort: Path) -> None:
    subjects = discover(cohort)
    assert [s.id for s in subjects] == ["case_a", "case_b", "case_c", "case_d_broken"]
    assert set(subjects[0].files) == {"flair", "t1c", "t1"} and set(subjects[1].files) == {"flair", "t1c"}


def test_discover_bids_with_sessions(tmp_path: Path) -> None:
    (tmp_path / "dataset_description.json").write_text("{}")
    for ses in ("ses-1", "ses-2"):
        anat = tmp_path / "sub-01" / ses / "anat"
        anat.mkdir(parents=True)
        for name in ("FLAIR", "ce-gd_T1w", "T1w", "T2w", "dseg"):
            (anat / f"sub-01_{ses}_{name}.nii.gz").write_bytes(b"x")
    (tmp_path / "sub-02" / "anat").mkdir(parents=True)
    (tmp_path / "sub-02" / "anat" / "sub-02_T1w.nii.gz").write_bytes(b"x")
    subjects = discover(tmp_path)
    assert [s.id for s in subjects] == ["sub-01_ses-1", "sub-01_ses-2", "sub-02"]
    assert set(subjects[0].files) == {"flair", "t1c", "t1", "t2"} and subjects[0].session == "ses-1"
    assert bids_contrast(Path("sub-1_acq-x_ce-gd_T1w.nii")) == "t1c"
    with pytest.raises(FileNotFoundError):
        discover(tmp_path / "missing")


def test_failure_isolated_and_recorded(full_run: Path) -> None:
    rows = {r["id"]: r for r in read_cohort(full_run / CSV_NAME)}
    assert rows["case_d_broken"]["status"] == "failed"
    assert "truncated" in rows["case_d_broken"]["error"] and "flair.nii.gz" in rows["case_d_broken"]["error"]
    assert not (full_run / "case_d_broken").exists()
    for sid in ("case_a", "case_b", "case_c"):
        assert rows[sid]["status"] == "ok" and float(rows[sid]["whole_tumor_ml"]) > 0
        assert (full_run / sid / DONE).is_file() and rows[sid]["model_id"] == "rule-tumor"
    assert rows["case_a"]["outputs"] == "case_a/tumor.nii.gz"
    assert not list(full_run.glob(".*partial*"))


def test_resume_after_interruption_gives_the_same_csv(cohort: Path, full_run: Path, rule_card: str,
                                                      tmp_path: Path) -> None:
    cancel = CancelToken()
    first = run_batch(cohort, tmp_path, "segment", {"model": rule_card}, processes=False, cancel=cancel,
                      on_row=lambda row: cancel.cancel())
    assert first.interrupted and any(r["status"] == "not run" for r in first.rows)
    # what a killed run leaves: a partial folder (a result folder appears only whole, with done.json)
    stale = tmp_path / ".case_c.partial-deadbeef"
    stale.mkdir()
    (stale / "tumor.nii.gz").write_bytes(b"half written")
    done_before = {p.parent.name for p in tmp_path.glob(f"*/{DONE}")}
    second = run_batch(cohort, tmp_path, "segment", {"model": rule_card}, processes=False)
    assert second.skipped == len(done_before) >= 1 and second.ran == 4 - len(done_before)
    assert not stale.exists() and not second.interrupted
    assert (tmp_path / CSV_NAME).read_text() == (full_run / CSV_NAME).read_text()


def test_batch_output_reruns_from_its_sidecar(full_run: Path, tmp_path: Path) -> None:
    out = full_run / "case_b" / "tumor.nii.gz"
    record = read_sidecar(sidecar_path(out))
    assert record["batch"] and record["output"]["path"] == str(out.resolve())
    assert record["inputs"]["flair"]["sha256"] and record["measurements"]["whole_tumor_ml"] > 0
    result = rerun(sidecar_path(out), tmp_path)
    assert result["exit_code"] == 0 and result["outputs"]["output"]["voxel_identical"]


def test_subject_files_from_csv(full_run: Path) -> None:
    inputs, outputs = subject_files(full_run / CSV_NAME, "case_a")
    assert {p.name for p in inputs} == {"t2f.nii.gz", "t1c.nii.gz", "t1n.nii.gz"}
    assert outputs == [full_run / "case_a" / "tumor.nii.gz"]
    with pytest.raises(ValueError, match="not in"):
        subject_files(full_run / CSV_NAME, "nobody")


def test_classify_and_synthesize_tasks(cohort: Path, tmp_path: Path) -> None:
    classify = run_batch(cohort, tmp_path / "cls", "classify", processes=False)
    rows = {r["id"]: r for r in classify.rows}
    assert classify.failed == 1 and rows["case_a"]["predicted_class"] == "tumour"
    assert 0.5 < rows["case_a"]["p_tumour"] <= 1
    assert (tmp_path / "cls" / "case_a" / "classification.json").exists()
    synth = run_batch(cohort, tmp_path / "syn", "synthesize", {"model": "histogram", "target": "flair"},
                      processes=False)
    rows = {r["id"]: r for r in synth.rows}
    assert rows["case_b"]["status"] == "ok" and rows["case_b"]["outputs"] == "case_b/flair_synthetic.nii.gz"
    assert read_sidecar(tmp_path / "syn" / "case_b" / "flair_synthetic.nii.gz")["synthetic"] is True


def test_segment_without_t1c_gives_whole_tumour_and_empty_core_volumes(rule_card: str,
                                                                        tmp_path: Path) -> None:
    from tests.toy_volumes import toy_head

    (tmp_path / "in" / "case_a").mkdir(parents=True)
    io.save(toy_head(seed=1), tmp_path / "in" / "case_a" / "t2f.nii.gz")
    io.save(toy_head(seed=2), tmp_path / "in" / "case_a" / "t1n.nii.gz")
    result = run_batch(tmp_path / "in", tmp_path / "out", "segment", {"model": rule_card}, processes=False)
    row = result.rows[0]
    assert row["status"] == "ok", row["error"]
    assert row["tumor_core_ml"] is None and row["enhancing_ml"] is None and row["whole_tumor_ml"] >= 0
    assert read_cohort(result.csv_path)[0]["tumor_core_ml"] == ""
