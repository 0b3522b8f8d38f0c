"""`batch` on a dask.distributed scheduler address, resumed; `open-subject` layers from the cohort CSV."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from napari_brain_dl.cli import main
from napari_brain_dl.cli.batch import subject_layers
from napari_brain_dl.core import io
from napari_brain_dl.core.batch import CSV_NAME, local_cluster_options
from napari_brain_dl.core.cohort import read_cohort


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """A LocalCluster with one thread worker over inproc:// (no TCP), started here, its address given."""
    from distributed import LocalCluster
    from distributed.comm import inproc

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(inproc.global_manager, "_ip", "127.0.0.1")  # else dask probes 8.8.8.8 for an IP
        cluster = LocalCluster(**local_cluster_options(1, processes=False))
        try:
            yield cluster.scheduler_address
        finally:
            cluster.close()


@pytest.fixture(scope="module")
def cohort(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two subjects at 2 mm (BraTS 2023, BraTS 2015) and one whose FLAIR is truncated."""
    root = tmp_path_factory.mktemp("cli_cohort")
    sources = {
        "sub_a": {"t2f": data_dir / "brats_gli_00001" / "t2f.nii.gz",
                  "t1c": data_dir / "brats_gli_00001" / "t1c.nii.gz"},
        "sub_b": {c: data_dir / "brats2015_flair_t1c" / "brats_2013_pat0005_1" / f"{c}_subtrMeanDivStd.nii.gz"
                  for c in ("Flair", "T1c")},
    }
    for subject, files in sources.items():
        (root / subject).mkdir()
        for name, src in files.items():
            vol = io.load(src)
            affine = vol.affine.copy()
            affine[:3, :3] *= 2
            io.save(type(vol)(np.ascontiguousarray(vol.data[::2, ::2, ::2]), affine, name),
                    root / subject / f"{name}.nii.gz")
    (root / "sub_c").mkdir()
    (root / "sub_c" / "t1c.nii.gz").write_bytes((root / "sub_a" / "t1c.nii.gz").read_bytes())
    (root / "sub_c" / "flair.nii.gz").write_bytes(b"\x1f\x8b truncated")
    return root


def test_batch_on_scheduler_address_resumes_and_isolates_failure(
    cohort: Path, scheduler: str, rule_card: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["batch", "--task", "segment", "--model", rule_card, "--input-dir", str(cohort),
            "--output-dir", str(tmp_path), "--scheduler", scheduler]
    assert main(args) == 1  # one subject failed: reported, not fatal
    captured = capsys.readouterr()
    assert "3/3" in captured.err and "sub_c" in captured.err and "2 subject(s) done" in captured.out
    rows = {r["id"]: r for r in read_cohort(tmp_path / CSV_NAME)}
    assert rows["sub_a"]["status"] == rows["sub_b"]["status"] == "ok"
    assert rows["sub_c"]["status"] == "failed" and "flair.nii.gz" in rows["sub_c"]["error"]
    first = (tmp_path / CSV_NAME).read_text()

    assert main(args) == 1  # resume: finished subjects skipped, the broken one tried again
    assert "(2 already finished)" in capsys.readouterr().out
    assert (tmp_path / CSV_NAME).read_text() == first

    layers = subject_layers(tmp_path / CSV_NAME, "sub_a")
    assert [kind for *_, kind in layers] == ["image", "image", "labels"]
    data, kwargs, _ = layers[-1]
    assert kwargs["metadata"]["provenance"]["model"]["id"] == "rule-tumor" and data.max() > 0
    assert data.shape == layers[0][0].shape


def test_batch_and_open_subject_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["batch", "--task", "segment", "--input-dir", str(tmp_path / "nope"),
                 "--output-dir", str(tmp_path / "out")]) == 3
    assert "does not exist" in capsys.readouterr().err
    assert main(["batch", "--task", "segment", "--input-dir", str(tmp_path), "--output-dir",
                 str(tmp_path / "out"), "--workers", "0"]) == 3
    (tmp_path / "c.csv").write_text("id,subject,inputs\nx,x,/a.nii.gz\n")
    assert main(["open-subject", str(tmp_path / "c.csv"), "y"]) == 3
    assert "not in" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.allow_loopback("default local Dask cluster: worker processes reach the scheduler on 127.0.0.1")
def test_batch_default_cluster_of_worker_processes(cohort: Path, rule_card: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["batch", "--task", "segment", "--model", rule_card, "--input-dir", str(cohort),
                 "--output-dir", str(tmp_path), "--workers", "2"]) == 1
    rows = {r["id"]: r["status"] for r in read_cohort(tmp_path / CSV_NAME)}
    assert rows == {"sub_a": "ok", "sub_b": "ok", "sub_c": "failed"}
    assert "2 subject(s) done" in capsys.readouterr().out
