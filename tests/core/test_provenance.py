"""Provenance sidecars beside every CLI output, and `rerun` reproducing a result from its sidecar alone."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_brain_dl.cli import main
from napari_brain_dl.core import io
from napari_brain_dl.core.jobs.rerun import rerun
from napari_brain_dl.core.provenance import read_sidecar, sidecar_path, write_sidecar


def _small_exam(source: Path, folder: Path, names: tuple[str, ...] = ("t2f", "t1c", "t1n")) -> dict[str, str]:
    """brats_gli_00001 contrasts at 2 mm (every other voxel, affine scaled): fast, still a head."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in names:
        vol = io.load(source / f"{name}.nii.gz")
        affine = vol.affine.copy()
        affine[:3, :3] *= 2
        small = type(vol)(np.ascontiguousarray(vol.data[::2, ::2, ::2]), affine, name)
        out[name] = str(io.save(small, folder / f"{name}.nii.gz"))
    return out


@pytest.fixture(scope="module")
def exam(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return _small_exam(data_dir / "brats_gli_00001", tmp_path_factory.mktemp("exam"))


def _segment(exam: dict[str, str], out: Path, card: str, *extra: str) -> int:
    return main(["segment", "--flair", exam["t2f"], "--t1c", exam["t1c"], "--t1", exam["t1n"],
                 "-o", str(out), "--model", card, "--device", "cpu", *extra])


def test_segment_writes_sidecar_and_rerun_reproduces_it(exam: dict[str, str], tmp_path: Path,
                                                         rule_card: str) -> None:
    out = tmp_path / "run1" / "tumor.nii.gz"
    out.parent.mkdir()
    assert _segment(exam, out, rule_card, "--json", str(out.parent / "tumor.json")) == 0
    side = sidecar_path(out)
    assert side.name == "tumor.nii.gz.json" and (out.parent / "tumor.json").exists()
    rec = read_sidecar(side)
    assert rec["product"]["name"] == "napari-brain-dl" and rec["product"]["version"]
    assert rec["command"] == "segment" and rec["model"]["id"] == "rule-tumor"
    assert len(rec["model"]["weights_sha256"]) == 64 and len(rec["model"]["card_sha256"]) == 64
    assert rec["device"] == "cpu" and rec["timings"]["wall_seconds"] > 0
    assert rec["inputs"]["flair"]["sha256"] == io_sha(exam["t2f"]) and rec["inputs"]["t2"] is None
    assert rec["output"]["sha256"] == io_sha(out) and rec["parameters"]["preprocessing"]
    assert rec["measurements"]["whole_tumor_ml"] > 0

    result = rerun(side, tmp_path / "run2")  # the sidecar alone: no other argument
    new = result["outputs"]["output"]
    assert result["exit_code"] == 0 and new["voxel_identical"]
    a, b = nib.load(out), nib.load(new["path"])
    assert np.array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj)) and np.allclose(a.affine, b.affine)
    assert new["identical"], "the NIfTI bytes differ between two runs"
    assert sidecar_path(new["path"]).exists()

    # the CLI twin says identical, exit 0; the original is never replaced without --overwrite
    assert main(["rerun", str(side), "--output-dir", str(tmp_path / "run3")]) == 0
    assert main(["rerun", str(side)]) == 3


def io_sha(path: str | Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_rerun_refuses_changed_input(exam: dict[str, str], tmp_path: Path, rule_card: str) -> None:
    copy = tmp_path / "flair.nii.gz"
    copy.write_bytes(Path(exam["t2f"]).read_bytes())
    local = {**exam, "t2f": str(copy)}
    out = tmp_path / "tumor.nii.gz"
    assert _segment(local, out, rule_card) == 0
    vol = io.load(copy)
    io.save(vol.with_data(np.asarray(vol.data) + 1), copy, overwrite=True)
    with pytest.raises(ValueError, match="changed"):
        rerun(sidecar_path(out), tmp_path / "again")
    assert main(["rerun", str(sidecar_path(out)), "--output-dir", str(tmp_path / "again")]) == 3


def test_existing_sidecar_is_never_replaced_silently(exam: dict[str, str], tmp_path: Path,
                                                     rule_card: str) -> None:
    out = tmp_path / "tumor.nii.gz"
    sidecar_path(out).write_text("{}")
    assert _segment(exam, out, rule_card) == 3 and not out.exists()
    assert json.loads(sidecar_path(out).read_text()) == {}
    with pytest.raises(FileExistsError):
        write_sidecar(out, {"schema": "x"})
    assert _segment(exam, out, rule_card, "--overwrite") == 0
    assert read_sidecar(out)["command"] == "segment"


def test_read_sidecar_rejects_other_json(tmp_path: Path) -> None:
    other = tmp_path / "x.nii.gz.json"
    other.write_text(json.dumps({"a": 1}))
    with pytest.raises(ValueError, match="not a napari-brain-dl provenance"):
        read_sidecar(other)


def test_run_and_explain_sidecars_rerun(exam: dict[str, str], tmp_path: Path, rule_card: str) -> None:
    out = tmp_path / "labels.nii.gz"
    inputs = [exam["t2f"], exam["t1c"], exam["t1n"], exam["t1n"]]
    assert main(["run", "--model", rule_card, *[a for p in inputs for a in ("--input", p)],
                 "-o", str(out), "--device", "cpu"]) == 0
    rec = read_sidecar(out)
    assert rec["command"] == "run" and len(rec["options"]["input"]) == 4 and rec["inputs"]["input3"]
    assert rerun(out, tmp_path / "again")["outputs"]["output"]["identical"]

    heat = tmp_path / "heat.nii.gz"
    assert main(["explain", "--flair", exam["t2f"], "--t1c", exam["t1c"], "--method", "gradcam",
                 "--no-checks", "-o", str(heat)]) == 0
    rec = read_sidecar(heat)
    assert rec["model"]["id"] == "tumor-present" and rec["explanation"]["method"] == "gradcam"
    assert rec["explanation"]["checks"] == {} and rec["inputs"]["mask"] is None
    assert rerun(heat, tmp_path / "again")["outputs"]["output"]["voxel_identical"]


@pytest.mark.parametrize("command", ["convert", "super-resolve"])
def test_rerun_is_byte_identical(command: str, exam: dict[str, str], tmp_path: Path) -> None:
    """Deterministic commands: the re-run writes the same bytes as the first run (issue #18)."""
    out = tmp_path / "first" / "out.nii.gz"
    out.parent.mkdir()
    scan = io.load(exam["t1n"])
    affine = scan.affine.copy()
    affine[:3, 2] *= 3  # 6 mm slices: something to super-resolve
    thick = io.save(type(scan)(np.ascontiguousarray(scan.data[:, :, ::3]), affine, "t1"),
                    tmp_path / "thick.nii.gz")
    args = {"convert": ["convert", exam["t1n"], str(out)],
            "super-resolve": ["super-resolve", str(thick), str(out), "--method", "bspline"]}[command]
    assert main(args) == 0
    assert read_sidecar(out)["command"] == command
    result = rerun(out, tmp_path / "again")
    assert result["exit_code"] == 0 and result["outputs"]["output"]["identical"]
