"""`report` writes HTML + PDF from files and their sidecars; refuses to replace; one sentence on bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_brain_dl.cli import main
from napari_brain_dl.core import io
from napari_brain_dl.core.volume import Volume


@pytest.fixture(scope="module")
def exam(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("cli_report")
    out = {}
    for name, file in (("flair", "t2f"), ("labels", "seg-BraTS23_1")):
        vol = io.load(data_dir / "brats_gli_00001" / f"{file}.nii.gz")
        affine = vol.affine.copy()
        affine[:3, :3] *= 3
        small = Volume(np.ascontiguousarray(vol.data[::3, ::3, ::3]), affine, name)
        out[name] = str(io.save(small, folder / f"{name}.nii.gz"))
    return out


def test_report_cli(exam: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    html, pdf = tmp_path / "r.html", tmp_path / "r.pdf"
    args = ["report", "--scan", f"FLAIR={exam['flair']}", "--labels", exam["labels"], "-o", str(html),
            "--pdf", str(pdf)]
    assert main(args) == 0, capsys.readouterr().err
    assert "Research use only" in html.read_text() and pdf.read_bytes().startswith(b"%PDF")
    before = html.read_bytes()
    assert main(args) == 3 and html.read_bytes() == before  # never replaced without --overwrite
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert main(["report", "--scan", exam["flair"], "-o", str(tmp_path / "x.html")]) == 3
    assert "NAME=FILE" in capsys.readouterr().err and not (tmp_path / "x.html").exists()


def test_report_volumes_over_time_from_a_cohort_csv(exam: dict[str, str], tmp_path: Path) -> None:
    csv = tmp_path / "cohort.csv"
    csv.write_text("id,subject,session,status,whole_tumor_ml,tumor_core_ml,enhancing_ml\n"
                   "sub-1_ses-2,sub-1,ses-2,ok,80.5,30,12\nsub-1_ses-1,sub-1,ses-1,ok,120.25,50,20\n"
                   "sub-2,sub-2,,ok,5,1,1\nsub-1_ses-3,sub-1,ses-3,failed,,,\n")
    html = tmp_path / "r.html"
    assert main(["report", "--scan", f"FLAIR={exam['flair']}", "--labels", exam["labels"],
                 "--cohort", str(csv), "--subject", "sub-1", "-o", str(html)]) == 0
    text = html.read_text()
    assert "Volumes over time" in text and "120.25" in text and "80.50" in text
    assert text.index("ses-1") < text.index("ses-2") and "ses-3" not in text
    assert main(["report", "--scan", f"FLAIR={exam['flair']}", "--cohort", str(csv), "--subject", "sub-9",
                 "-o", str(tmp_path / "x.html")]) == 3
