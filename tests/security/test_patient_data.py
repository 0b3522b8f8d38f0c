"""Patient identifiers of a DICOM exam never reach what the product writes or says.

The real series ../shared/data/dicom_t1_axial is de-identified, so 30 of its slices are copied (pixels halved)
into tmp_path with made-up identifiers (pixel data and geometry untouched). Every command that
reads an exam then runs on that copy; every file written (gzip opened), stdout, stderr and every
log record is searched for the identifiers. A DICOM SEG keeps them only when asked to.
"""

from __future__ import annotations

import gzip
import logging
from io import BytesIO
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
import pytest

from napari_brain_dl.cli import build_parser, main
from napari_brain_dl.core import io
from napari_brain_dl.core.dicom import list_series
from napari_brain_dl.core.export import save_dicom_seg, save_labels_nifti

IDENTIFIERS = {
    "PatientName": "DOE^JANE",
    "PatientID": "PID-12345",
    "PatientBirthDate": "19700101",
    "AccessionNumber": "ACC-999",
    "OtherPatientIDs": "OTHER-777",
}
#: Searched everywhere, voxel data included (7+ characters: no chance match in binary data).
SEARCHED = tuple(IDENTIFIERS.values())
#: Also searched in text: files with a text suffix, NIfTI headers, stdout, stderr and logs.
SHORT = ("DOE", "JANE")
TEXT_SUFFIXES = (".json", ".html", ".txt", ".csv", ".md", ".log")


@pytest.fixture(scope="module")
def exam(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every other slice and pixel of the middle of the real series (256 x 256 x 30, 210 x 210 x 90 mm),
    with fake patient identifiers."""
    (files,) = list_series(data_dir / "dicom_t1_axial").values()
    folder = tmp_path_factory.mktemp("exam") / "t1_series"
    folder.mkdir()
    for name in files[30:90:2]:
        ds = pydicom.dcmread(name)
        pixels = ds.pixel_array[::2, ::2]  # every other pixel: same field of view, 4x fewer voxels
        ds.PixelData, ds.Rows, ds.Columns = pixels.tobytes(), *pixels.shape
        ds.PixelSpacing = [float(v) * 2 for v in ds.PixelSpacing]
        for keyword, value in IDENTIFIERS.items():
            setattr(ds, keyword, value)
        ds.save_as(folder / Path(name).name)
    return folder


def _text(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def _leaks(blob: bytes, where: str, text: bool = True) -> list[str]:
    return [f"{where}: {s}" for s in SEARCHED + (SHORT if text else ()) if s.encode() in blob]


def _file_leaks(path: Path) -> list[str]:
    blob = _text(path)
    leaks = _leaks(blob, path.name, text=path.suffix in TEXT_SUFFIXES)
    if path.name.endswith((".nii", ".nii.gz")):  # header and extensions: text fields
        offset = int(nib.Nifti1Header.from_fileobj(BytesIO(blob[:348]))["vox_offset"])
        leaks += [leak for leak in _leaks(blob[:offset], f"{path.name} header") if leak not in leaks]
    return leaks


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def log_lines() -> Any:
    """Every log record of every logger, at DEBUG level, while the test runs."""
    root, handler = logging.getLogger(), _Records()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler.lines
    root.removeHandler(handler)
    root.setLevel(level)


def test_no_identifier_in_any_output(
    exam: Path, tmp_path: Path, rule_card: str, capsys: pytest.CaptureFixture[str], log_lines: list[str]
) -> None:
    assert pydicom.dcmread(next(exam.iterdir())).PatientName == "DOE^JANE"  # the copy does carry them
    out = tmp_path / "out"
    out.mkdir()
    d = str(exam)
    runs = [
        ["info", d],
        ["convert", d, str(out / "t1.nii.gz")],
        ["convert", d, str(out / "t1.nrrd")],
        ["convert", d, str(out / "t1.mha")],
        ["segment", "--flair", d, "--t1c", d, "--model", rule_card, "--device", "cpu",
         "-o", str(out / "seg.nii.gz"), "--json", str(out / "seg.json")],
        ["classify", "--flair", d, "--json", str(out / "classify.json")],
        ["explain", "--flair", d, "--method", "gradcam", "--no-checks", "-o", str(out / "heat.nii.gz"),
         "--json", str(out / "heat.json")],
    ]
    available = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    if "super-resolve" in available:
        runs.append(["super-resolve", d, str(out / "sr.nii.gz"), "--method", "bspline", "--device", "cpu"])
    if "report" in available:
        runs.append(["report", "--scan", f"FLAIR={d}", "--labels", str(out / "seg.nii.gz"),
                     "-o", str(out / "report.html")])
    said = []
    for argv in runs:
        code = main(argv)
        captured = capsys.readouterr()
        said.append((argv[0], captured.out + captured.err))
        assert code == 0, (argv, captured.err)

    source = io.load(exam)
    labels = source.with_data((np.asarray(source.data) > np.percentile(source.data, 99)).astype(np.uint8))
    save_dicom_seg(labels, source, out / "seg.dcm", label_names={1: "bright"})
    save_labels_nifti(labels, source, out / "labels.nii.gz")

    written = sorted(p for p in out.rglob("*") if p.is_file())
    assert {p.name for p in written} >= {"t1.nii.gz", "t1.nrrd", "t1.mha", "seg.nii.gz", "seg.json",
                                         "classify.json", "heat.nii.gz", "heat.json", "seg.dcm"}
    leaks = [leak for p in written for leak in _file_leaks(p)]
    leaks += [leak for command, text in said for leak in _leaks(text.encode(), f"{command} output")]
    leaks += _leaks("\n".join(log_lines).encode(), "log")
    leaks += _leaks(repr(source.info()).encode(), "Volume.info()")
    assert leaks == []

    seg = pydicom.dcmread(out / "seg.dcm")  # still a valid SEG of the same study, identifiers empty
    assert seg.StudyInstanceUID == pydicom.dcmread(next(exam.iterdir())).StudyInstanceUID
    assert seg.PatientName == "" and seg.PatientID == "" and "OtherPatientIDs" not in seg


def test_dicom_seg_keeps_identifiers_only_when_asked(exam: Path, tmp_path: Path) -> None:
    source = io.load(exam)
    labels = source.with_data(np.zeros(source.shape, np.uint8))
    labels.data[100:110, 100:110, 5:8] = 1
    path = save_dicom_seg(labels, source, tmp_path / "seg.dcm", label_names={1: "lesion"},
                          keep_identifiers=True)
    seg = pydicom.dcmread(path)
    assert (seg.PatientName, seg.PatientID, seg.PatientBirthDate, seg.AccessionNumber) == (
        "DOE^JANE", "PID-12345", "19700101", "ACC-999")


@pytest.mark.allow_loopback("batch: the local Dask cluster's worker processes on 127.0.0.1")
def test_no_identifier_from_the_other_writing_commands(
    exam: Path, tmp_path: Path, rule_card: str, capsys: pytest.CaptureFixture[str], log_lines: list[str]
) -> None:
    """skullstrip, run, click-segment, synthesize, rerun and batch (on a NIfTI whose free-text header
    holds the identifiers: batch reads NIfTI cohorts)."""
    from tests.bad_inputs.commands import write_tiny_card

    out, d = tmp_path / "out", str(exam)
    out.mkdir()
    tiny = write_tiny_card(tmp_path / "tiny")
    cohort = tmp_path / "cohort" / "sub_a"
    cohort.mkdir(parents=True)
    for name in ("t2f.nii.gz", "t1c.nii.gz"):
        vol = io.load(exam)
        nifti = nib.Nifti1Image(np.asarray(vol.data, np.float32), vol.affine)
        nifti.header["descrip"] = b"DOE^JANE PID-12345 19700101"
        nib.save(nifti, cohort / name)
    runs = [
        ["skullstrip", d, str(out / "mask.nii.gz"), "--model", tiny, "--device", "cpu"],
        ["run", "--model", tiny, "--input", d, "-o", str(out / "run.nii.gz"),
         "--json", str(out / "run.json")],
        ["click-segment", "--flair", d, "--t1c", d, "--fg", "128,128,15", "--device", "cpu",
         "-o", str(out / "click.nii.gz"), "--json", str(out / "click.json")],
        ["synthesize", "--t1c", d, "--target", "flair", "--model", "histogram", "--device", "cpu",
         "-o", str(out / "flair_synthetic.nii.gz"), "--json", str(out / "synth.json")],
        ["rerun", str(out / "run.nii.gz"), "--output-dir", str(out / "again")],
        ["batch", "--task", "segment", "--model", rule_card, "--input-dir", str(cohort.parent),
         "--output-dir", str(out / "batch")],
    ]
    said = []
    for argv in runs:
        code = main(argv)
        captured = capsys.readouterr()
        said.append((argv[0], captured.out + captured.err))
        assert code == 0, (argv, captured.err)
    written = sorted(p for p in out.rglob("*") if p.is_file())
    assert {p.name for p in written} >= {"mask.nii.gz", "run.nii.gz", "run.json", "click.nii.gz",
                                         "click.json", "flair_synthetic.nii.gz", "synth.json", "tumor.nii.gz",
                                         "cohort.csv"}
    leaks = [leak for p in written for leak in _file_leaks(p)]
    leaks += [leak for command, text in said for leak in _leaks(text.encode(), f"{command} output")]
    leaks += _leaks("\n".join(log_lines).encode(), "log")
    assert leaks == []
