"""The built wheel, installed (not editable) outside the repository, works like the checkout.

One wheel is built from the repository; it is installed with ``pip install --target`` and
into a fresh virtual environment, and used from a folder outside the repository: shipped
models found through package data, ``segment`` on a real case and ``explain --method gradcam``.
Dependencies are not reinstalled: the fresh environment sees this environment's packages
through a plain path entry (no editable finder, so only the wheel's napari_brain_dl exists).
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OFFLINE = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}  # pip asks no registry
SHIPPED = {"brats-tumor-seg", "brats-tumor-click", "tumor-present", "synth-mri"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(REPO)], check=True, cwd=out, env=OFFLINE)
    return next(out.glob("napari_brain_dl-*.whl"))


def _run(python: str, args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, *args], cwd=cwd, env={**OFFLINE, **env}, capture_output=True,
                          text=True, timeout=900)


def test_wheel_holds_models_licence_and_no_tests(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for card in SHIPPED:
        assert f"napari_brain_dl/resources/models/{card}.yaml" in names
    assert "napari_brain_dl/resources/models/brats-tumor-seg.safetensors" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "bench/", "scripts/", "resources/")) for n in names)


@pytest.mark.slow
def test_target_install_runs_models_segment_and_gradcam(wheel: Path, tmp_path: Path, data_dir: Path) -> None:
    target, elsewhere = tmp_path / "target", tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, cwd=elsewhere, env=OFFLINE)
    env = {"PYTHONPATH": str(target), "NAPARI_BRAIN_DL_HOME": str(tmp_path / "home")}
    where = _run(sys.executable, ["-c", "import napari_brain_dl.core.resources as r, napari_brain_dl as p; "
                                  "print(p.__file__); print(r.resources_dir())"], elsewhere, env)
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(target)) for line in where.stdout.split())
    cli = ["-m", "napari_brain_dl.cli"]
    listed = _run(sys.executable, [*cli, "models", "list", "--json"], elsewhere, env)
    available = {m["id"] for m in json.loads(listed.stdout) if m["available"]}
    assert available >= SHIPPED, listed.stderr
    case = data_dir / "brats2015_flair_t1c" / "brats_2013_pat0003_1"
    flair, t1c = case / "Flair_subtrMeanDivStd.nii.gz", case / "T1c_subtrMeanDivStd.nii.gz"
    exam = ["--flair", str(flair), "--t1c", str(t1c)]
    seg = _run(sys.executable, [*cli, "segment", *exam, "-o", "tumor.nii.gz", "--json", "tumor.json"],
               elsewhere, env)
    assert seg.returncode == 0, seg.stderr
    assert json.loads((elsewhere / "tumor.json").read_text())["measurements"]["whole_tumor_ml"] > 10
    heat = _run(sys.executable, [*cli, "explain", *exam, "--method", "gradcam", "--no-checks",
                                 "-o", "heat.nii.gz"], elsewhere, env)
    assert heat.returncode == 0, heat.stderr
    assert (elsewhere / "heat.nii.gz").is_file()


@pytest.mark.slow
def test_virtualenv_install_lists_the_shipped_models(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, cwd=tmp_path,
                   env=OFFLINE)
    packages = _run(python, ["-c", "import site; print(site.getsitepackages()[0])"], tmp_path, {}).stdout
    packages = packages.strip()
    Path(packages, "deps-from-test-env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    env = {"NAPARI_BRAIN_DL_HOME": str(tmp_path / "home"), "PYTHONPATH": ""}
    where = _run(python, ["-c", "import napari_brain_dl as p; print(p.__file__)"], tmp_path, env)
    assert where.stdout.startswith(packages), where.stderr
    listed = _run(str(venv / "bin" / "napari-brain-dl"), ["models", "list", "--json"], tmp_path, env)
    assert listed.returncode == 0, listed.stderr
    assert {m["id"] for m in json.loads(listed.stdout) if m["available"]} >= SHIPPED


def test_manifest_validates_and_requirements_are_consistent() -> None:
    bin_dir = Path(sys.executable).parent
    manifest = subprocess.run([str(bin_dir / "npe2"), "validate", "napari-brain-dl"], capture_output=True,
                              text=True, env=OFFLINE, timeout=300)
    assert manifest.returncode == 0 and "valid" in manifest.stdout, manifest.stdout + manifest.stderr
    check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True,
                           env=OFFLINE, timeout=300)
    assert check.returncode == 0, check.stdout


def test_index_description_has_no_relative_links(wheel: Path) -> None:
    """The package index page shows no broken images: relative links are written out as paths."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from pypi_description import main as description_main
    finally:
        sys.path.pop(0)
    assert description_main(["--check"]) == 0, "docs/PYPI.md is older than README.md"
    metadata = next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Research use only" in text and "pip install" in text
    assert "](docs/" not in text and "](bench/" not in text and "![" not in text
