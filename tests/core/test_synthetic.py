"""Synthetic images are marked in name, metadata, file header and file name; never silently."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_brain_dl.core import io
from napari_brain_dl.core.synthetic import (
    is_synthetic,
    mark_synthetic,
    save_synthetic,
    synthetic_file_name,
)
from napari_brain_dl.core.volume import Volume


def _volume() -> Volume:
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    data = np.random.default_rng(0).random((8, 9, 10)).astype(np.float32)
    return Volume(data, affine, name="t1c", meta={"path": "/data/t1c.nii.gz", "description": "acquired"})


def test_mark_synthetic_names_flags_and_describes() -> None:
    src = _volume()
    syn = mark_synthetic(src, target="FLAIR", sources=["T1c"], method="synth-flair-from-t1c",
                         provenance={"model_id": "synth-flair-from-t1c", "weights_sha256": "ab"})
    assert syn.name == "FLAIR (synthetic)"
    assert syn.meta["synthetic"] is True and is_synthetic(syn) and not is_synthetic(src)
    assert syn.meta["description"] == "SYNTHETIC FLAIR from T1c by synth-flair-from-t1c"
    info = syn.meta["synthesis"]
    assert (info["target"], info["sources"], info["model_id"], info["weights_sha256"]) == (
        "FLAIR", ["T1c"], "synth-flair-from-t1c", "ab")
    assert "path" not in syn.meta and syn.meta["source_path"] == "/data/t1c.nii.gz"
    assert syn.meta["provenance"]["synthetic"] is True
    assert np.array_equal(syn.affine, src.affine) and "path" in src.meta  # source untouched


def test_synthetic_file_name() -> None:
    assert synthetic_file_name("out/flair.nii.gz") == Path("out/flair_synthetic.nii.gz")
    assert synthetic_file_name("flair_synthetic.nii") == Path("flair_synthetic.nii")


def test_save_synthetic_stamps_header_and_reads_back(tmp_path: Path) -> None:
    syn = mark_synthetic(_volume(), target="T2", sources=["T1"], method="histogram")
    path = save_synthetic(syn, tmp_path / "case_t2_synthetic.nii.gz")
    img = nib.load(str(path))
    assert img.header["descrip"].tobytes().startswith(b"SYNTHETIC T2 from T1 by histogram")
    assert img.header["intent_name"].tobytes().rstrip(b"\0") == b"SYNTHETIC"
    assert path.name.endswith("_synthetic.nii.gz")
    back = io.load(path)
    assert is_synthetic(back) and np.allclose(back.affine, syn.affine)
    with pytest.raises(FileExistsError):
        save_synthetic(syn, path)


@pytest.mark.parametrize("name", ["case_t2.nii.gz", "case_t2_synthetic.nrrd", "case_t2_synthetic.mha"])
def test_save_synthetic_refuses_unstamped_names(tmp_path: Path, name: str) -> None:
    syn = mark_synthetic(_volume(), target="T2", sources=["T1"], method="histogram")
    with pytest.raises(ValueError, match="_synthetic"):
        save_synthetic(syn, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_save_synthetic_refuses_an_unmarked_volume(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not marked synthetic"):
        save_synthetic(_volume(), tmp_path / "x_synthetic.nii.gz")
    assert list(tmp_path.iterdir()) == []
