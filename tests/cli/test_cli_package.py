"""The command line as a package user meets it: models add / trust / remove, --device checked
before any input is read, and `demo` without Qt (issue #19)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from napari_brain_dl.cli import main
from napari_brain_dl.core.models.registry import default_registry, trusted_hashes


def _pickle_model(folder: Path) -> Path:
    """A card whose weights are a full pickle (loads only when trusted)."""
    folder.mkdir()
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 1))
    torch.save(net, folder / "net.pt")
    card = {"id": "my-pickle", "name": "Mine", "task": "segmentation", "inputs": ["T1"],
            "architecture": {"type": "torchscript"}, "weights": {"file": "net.pt"}}
    (folder / "mine.json").write_text(json.dumps(card))
    return folder


def test_models_add_trust_and_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _pickle_model(tmp_path / "models")
    assert main(["models", "add", str(folder)]) == 0
    assert "added my-pickle" in capsys.readouterr().out
    assert folder.resolve() in default_registry().folders()
    assert main(["models", "list", "--json"]) == 0
    assert "my-pickle" in {m["id"] for m in json.loads(capsys.readouterr().out)}
    assert main(["models", "trust", "my-pickle"]) == 0 and "trusted" in capsys.readouterr().out
    assert len(trusted_hashes()) == 1
    assert main(["models", "trust", "my-pickle", "--revoke"]) == 0 and not trusted_hashes()
    assert main(["models", "remove", "my-pickle"]) == 0
    assert folder.resolve() not in default_registry().folders() and (folder / "net.pt").is_file()
    assert main(["models", "remove", "brats-tumor-seg"]) == 3
    assert "shipped models cannot be removed" in capsys.readouterr().err


def test_models_add_with_trust_and_an_empty_folder(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    folder = _pickle_model(tmp_path / "models")
    assert main(["models", "add", str(folder / "mine.json"), "--trust"]) == 0
    assert "trusted" in capsys.readouterr().out and len(trusted_hashes()) == 1
    (tmp_path / "empty").mkdir()
    assert main(["models", "add", str(tmp_path / "empty")]) == 3
    assert "nothing was added" in capsys.readouterr().err
    assert (tmp_path / "empty").resolve() not in default_registry().folders()


def test_unknown_device_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["segment", "--flair", "f.nii.gz", "--t1c", "t.nii.gz", "-o", "o.nii.gz", "--device", "gpu"])
    assert exit_info.value.code == 2 and "invalid device 'gpu'" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_accelerator_refused_before_inputs_are_read(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "not_there.nii.gz")
    assert main(["segment", "--flair", missing, "--t1c", missing, "-o", str(tmp_path / "o.nii.gz"),
                 "--device", "cuda"]) == 3
    assert "no CUDA GPU" in capsys.readouterr().err


def test_demo_without_qt_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    real, bindings = importlib.util.find_spec, ("PyQt6", "PySide6", "PyQt5", "PySide2")
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in bindings else real(name, *a))
    assert main(["demo"]) == 3
    assert 'pip install "napari-brain-dl[qt]"' in capsys.readouterr().err


@pytest.mark.parametrize(("module", "extra"), [("distributed", "batch"), ("cryptography", "batch")])
def test_batch_without_its_extra_says_how_to_install_it(module: str, extra: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    (tmp_path / "in" / "case_a").mkdir(parents=True)
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    code = main(["batch", "--task", "segment", "--input-dir", str(tmp_path / "in"),
                 "--output-dir", str(tmp_path / "out")])
    assert code == 3 and f'pip install "napari-brain-dl[{extra}]"' in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_dicom_seg_without_its_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import numpy as np

    from napari_brain_dl.core.export import save_dicom_seg
    from napari_brain_dl.core.extras import MissingExtraError
    from napari_brain_dl.core.volume import Volume

    monkeypatch.setitem(sys.modules, "highdicom", None)
    vol = Volume(np.ones((4, 4, 4), np.uint8), np.eye(4), name="x")
    with pytest.raises(MissingExtraError, match=r'pip install "napari-brain-dl\[dicom-seg\]"'):
        save_dicom_seg(vol, vol, "seg.dcm", label_names={1: "tumour"})
