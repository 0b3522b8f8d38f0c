"""Image headers that point the reader at other files, or carry identifiers in free text.

Every hostile file is written by the test itself. A header naming another file as its voxel data
is refused by `info` and `convert` with one sentence and nothing written; a plain file name next
to the header (the usual .mhd + .raw pair) is still read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
            if result.code != 2 or len(result.error_lines) != 1 or "another file" not in result.err:
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
    assert result.code == 2 and len(result.error_lines) == 1, result.err
    assert ".cxx" not in result.err and "0x" not in result.err and "Exception thrown" not in result.err
