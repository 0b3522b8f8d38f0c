"""Image headers that point the reader at other files, or carry identifiers in free text.

Every hostile file is written by the test itself. A header naming another file as its voxel data
is refused by `info` and `convert` with one sentence and nothing written; a plain file name next
to the header (the usual .mhd + .raw pair) is still read.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from bad_inputs.commands import run_cli

from napari_brain_dl.core import io

SECRET = bytes(range(1, 65))  # the "other file": 64 recognisable bytes, 4 x 4 x 4 voxels

MHA = "ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementSpacing = 1 1 1\nElementType = MET_UCHAR\n"
NRRD = "NRRD0004\ntype: uchar\ndimension: 3\nsizes: 4 4 4\nspacings: 1 1 1\nencoding: raw\n"


def _hostile(folder: Path) -> dict[str, Path]:
    """Headers whose voxels would come from a file outside their folder (or a LIST of files)."""
    outside = folder / "private"
    outside.mkdir()
    (outside / "secret.bin").write_bytes(SECRET)
    scans = folder / "scans"
    scans.mkdir()
    (scans / "link.raw").symlink_to(outside / "secret.bin")
    absolute = str(outside / "secret.bin")
    files = {
        "mha absolute": ("abs.mha", MHA + f"ElementDataFile = {absolute}\n"),
        "mhd parent": ("parent.mhd", MHA + "ElementDataFile = ../private/secret.bin\n"),
        "mhd link leaving the folder": ("link.mhd", MHA + "ElementDataFile = link.raw\n"),
        "mhd LIST": ("list.mhd", MHA + "ElementDataFile = LIST\n../private/secret.bin\n"),
        "nrrd data file": ("abs.nrrd", NRRD + f"data file: {absolute}\n\n"),
        "nhdr datafile parent": ("parent.nhdr", NRRD + "datafile: ../private/secret.bin\n\n"),
        "nhdr LIST": ("list.nhdr", NRRD + "data file: LIST\n../private/secret.bin\n\n"),
    }
    paths = {}
    for case, (name, text) in files.items():
        paths[case] = scans / name
        paths[case].write_text(text)
    return paths


def test_headers_naming_other_files_are_refused(tmp_path: Path) -> None:
    failures = []
    for case, path in _hostile(tmp_path).items():
        for argv in (["info", str(path)], ["convert", str(path), str(tmp_path / "out" / "x.nii.gz")]):
            result = run_cli(argv, tmp_path / "out")
            if result.code != 3 or len(result.error_lines) != 1 or "another file" not in result.err:
                failures.append(f"{case} / {argv[0]}: exit {result.code}: {result.err.strip()[-200:]}")
            if result.files or str(SECRET[:8]) in result.out:
                failures.append(f"{case} / {argv[0]}: wrote {result.files} / printed voxels")
    assert not failures, "\n".join(failures)


def test_a_plain_data_file_beside_the_header_is_read(tmp_path: Path) -> None:
    (tmp_path / "scan.raw").write_bytes(SECRET)
    (tmp_path / "scan.mhd").write_text(MHA + "ElementDataFile = scan.raw\n")
    (tmp_path / "scan.nhdr").write_text(NRRD + "data file: scan.raw\n\n")
    for name in ("scan.mhd", "scan.nhdr"):
        volume = io.load(tmp_path / name)
        assert volume.shape == (4, 4, 4)
        assert sorted(np.asarray(volume.data).ravel().tolist()) == list(SECRET)


@pytest.mark.parametrize("suffix", [".mha", ".nrrd"])
def test_itk_errors_are_sentences_without_source_lines(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"broken{suffix}"
    path.write_text((MHA + "ElementDataFile = LOCAL\n") if suffix == ".mha" else NRRD + "\n")
    result = run_cli(["info", str(path)], tmp_path / "out")
    assert result.code == 3 and len(result.error_lines) == 1, result.err
    assert ".cxx" not in result.err and "0x" not in result.err and "Exception thrown" not in result.err


#: Identifiers planted in free-text header fields; none may appear in any output.
PLANTED = ("DOE^JANE", "PID-12345", "19700101")


def _nifti_with_identifiers(path: Path) -> Path:
    from bad_inputs.corpus import base_affine, head

    img = nib.Nifti1Image(head(), base_affine())
    img.header["descrip"] = b"Jane: DOE^JANE PID-12345 born 19700101"
    img.header["aux_file"] = b"PID-12345"
    img.header["intent_name"] = b"DOE^JANE"
    nib.save(img, str(path))
    return path


def _dicom_with_identifiers(folder: Path) -> Path:
    from bad_inputs.corpus import _dicom_series, head

    _dicom_series(folder, head(), description="T1 DOE^JANE PID-12345")
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        ds.ProtocolName = "born 19700101"
        ds.save_as(path)
    return folder


def _said_or_written(out: Path, *texts: str) -> list[str]:
    blobs = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    blobs = {name: gzip.decompress(b) if b[:2] == b"\x1f\x8b" else b for name, b in blobs.items()}
    blobs.update({f"output {i}": t.encode() for i, t in enumerate(texts)})
    return [f"{where}: {s}" for where, blob in blobs.items() for s in PLANTED if s.encode() in blob]


def test_free_text_header_fields_reach_no_output(tmp_path: Path, rule_card: str) -> None:
    scans = {"nifti": _nifti_with_identifiers(tmp_path / "t1.nii.gz"),
             "dicom": _dicom_with_identifiers(tmp_path / "t1_series")}
    leaks, said = [], []
    for kind, scan in scans.items():
        out = tmp_path / f"out_{kind}"
        s = str(scan)
        runs = [["info", s], ["convert", s, str(out / "a.nii.gz")], ["convert", s, str(out / "a.nrrd")],
                ["convert", s, str(out / "a.mha")],
                ["segment", "--flair", s, "--t1c", s, "--model", rule_card, "--device", "cpu",
                 "-o", str(out / "seg.nii.gz"), "--json", str(out / "seg.json")]]
        for argv in runs:
            result = run_cli(argv, out)
            assert result.code == 0, (argv, result.err)
            said += [result.out, result.err]
        leaks += _said_or_written(out, *said)
        volume = io.load(scan)
        leaks += [f"{kind} name / info: {p}" for p in PLANTED if p in volume.name or p in repr(volume.info())]
    assert leaks == []


def test_include_identifiers_shows_them(tmp_path: Path) -> None:
    nifti = _nifti_with_identifiers(tmp_path / "t1.nii.gz")
    dicom = _dicom_with_identifiers(tmp_path / "t1_series")
    result = run_cli(["info", str(nifti), "--include-identifiers"], tmp_path / "out")
    assert json.loads(result.out)["header_text"]["aux_file"] == "PID-12345"
    result = run_cli(["info", str(dicom), "--include-identifiers"], tmp_path / "out")
    assert json.loads(result.out)["header_text"] == {"series_description": "T1 DOE^JANE PID-12345",
                                                     "protocol_name": "born 19700101"}
    assert json.loads(result.out)["series_contrast"] == "t1"  # the contrast word is kept without the text
    run_cli(["convert", str(nifti), str(tmp_path / "out" / "c.nii.gz"), "--include-identifiers"],
            tmp_path / "out")
    assert b"PID-12345" in nib.load(tmp_path / "out" / "c.nii.gz").header["descrip"].tobytes()


def test_choosing_among_series_names_no_description(tmp_path: Path) -> None:
    from bad_inputs.corpus import _dicom_series, head

    folder = _dicom_with_identifiers(tmp_path / "exam")
    _dicom_series(folder, head()[:, :, :12], description="FLAIR DOE^JANE")
    result = run_cli(["info", str(folder)], tmp_path / "out")
    assert result.code == 3 and "2 DICOM series" in result.err and "flair" in result.err, result.err
    assert _said_or_written(tmp_path / "out", result.out, result.err) == []


def test_a_data_file_hidden_after_a_long_header_is_refused(tmp_path: Path) -> None:
    """A field past the first MiB of a header would not be checked: such headers are refused."""
    (tmp_path / "secret.bin").write_bytes(SECRET)
    padding = "".join(f"# comment line {i:07d} of a very long header\n" for i in range(30000))  # 1.3 MB
    for name, text in (("long.nhdr", NRRD + padding + f"data file: {tmp_path / 'secret.bin'}\n\n"),
                       ("long.mhd", MHA + padding.replace("# ", "Comment = ")
                        + f"ElementDataFile = {tmp_path / 'secret.bin'}\n")):
        (tmp_path / name).write_text(text)
        result = run_cli(["info", str(tmp_path / name)], tmp_path / "out")
        assert result.code == 3 and len(result.error_lines) == 1 and name in result.err, result.err
        assert "header longer" in result.err or "another file" in result.err, result.err
