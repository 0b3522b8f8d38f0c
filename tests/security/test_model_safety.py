"""Model files run no code unless the user trusts them; card paths stay in their folder.

Complements tests/core/test_models_{loaders,bundle,card}.py (weights_only, hostile bundles in
core, `..` paths) with what they leave open: a card vouching for itself, the command line,
listing models, symlinks and every path field, and a scan of the package source.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

import napari_brain_dl
from napari_brain_dl.cli import main
from napari_brain_dl.core.models import registry
from napari_brain_dl.core.models.card import CardError, ModelCard
from napari_brain_dl.core.models.loaders import UntrustedModelError, load_model

MARKER_NAME = "pwned.txt"
UNSAFE_CALLS = {"pickle.load", "pickle.loads", "marshal.loads", "eval", "exec", "dill.load", "yaml.load",
                "yaml.unsafe_load", "joblib.load"}


def _touch(path: str) -> int:
    Path(path).write_text("code from a model file ran")
    return 1


class _Writer:
    """Unpickles to a call of `_touch`: no banned module, yet code runs."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (_touch, (str(self.target),))


def _scan(folder: Path) -> str:
    data = np.zeros((12, 12, 12), np.float32)
    data[3:9, 3:9, 3:9] = 1.0
    nib.save(nib.Nifti1Image(data, np.eye(4)), folder / "t1.nii.gz")
    return str(folder / "t1.nii.gz")


def _card(folder: Path, **extra: object) -> Path:
    data = {
        "id": "selfish",
        "name": "Self-trusting",
        "task": "segmentation",
        "inputs": ["T1"],
        "architecture": {"type": "meshnet", "channels": 2, "dilations": [1], "n_classes": 2},
        "weights": {"file": "w.pth"},
        **extra,
    }
    (folder / "card.yaml").write_text(yaml.safe_dump(data))
    return folder / "card.yaml"


def _hostile_bundle(folder: Path, marker: Path) -> Path:
    (folder / "configs").mkdir(parents=True)
    write = f"$open({str(marker)!r}, 'w').write('x')"
    config = {
        "imports": ["$import os"],
        "network_def": {"_target_": "monai.networks.nets.BasicUNet", "spatial_dims": 3,
                        "in_channels": f"{write} and 1", "out_channels": 2},
        "initialize": [write],
        "run": [write],
    }
    (folder / "configs" / "inference.json").write_text(json.dumps(config))
    (folder / "models").mkdir()
    torch.save({"w": torch.zeros(1)}, folder / "models" / "model.pt")  # weights present: nothing stops early
    return folder


def test_a_card_cannot_trust_itself(tmp_path: Path) -> None:
    marker = tmp_path / MARKER_NAME
    torch.save({"weight": torch.zeros(1), "payload": _Writer(marker)}, tmp_path / "w.pth")
    card = ModelCard.from_file(_card(tmp_path, trusted=True))
    with pytest.raises(UntrustedModelError, match="would import and run code"):
        load_model(card)
    assert not marker.exists()
    out = tmp_path / "out.nii.gz"
    code = main(["run", "--model", str(tmp_path / "card.yaml"), "--input", _scan(tmp_path), "-o", str(out)])
    assert code == 3 and not marker.exists() and not out.exists()
    registry.trust(tmp_path / "w.pth")  # the user's decision, stored in the user folder, does count
    with pytest.raises(Exception, match=r"holds no tensors|do not match"):
        load_model(card)
    assert marker.exists()  # the proof that the refusal above was what kept the code from running


def test_hostile_bundle_refused_on_the_command_line_and_never_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / MARKER_NAME
    bundle = _hostile_bundle(tmp_path / "evil_bundle", marker)
    out = tmp_path / "o.nii.gz"
    code = main(["run", "--model", str(bundle), "--input", _scan(tmp_path), "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 3 and "would run code" in err and len(err.splitlines()) == 1
    assert not marker.exists() and not out.exists()
    registry.default_registry().add_folder(tmp_path)  # listing a folder holding it runs nothing either
    assert main(["models", "list", "--json"]) == 0
    capsys.readouterr()
    assert not marker.exists()


@pytest.mark.parametrize(
    "change",
    [
        {"weights": {"file": "../outside/w.pth"}},
        {"weights": {"file": "/etc/passwd"}},
        {"weights": {"file": "link.pth"}},  # a symlink inside the folder pointing outside it
        {"architecture": {"type": "meshnet", "config": "../outside/layers.json"}},
        {"architecture": {"type": "monai_bundle", "bundle": "../outside"}},
        {"output": {"kind": "labels", "colormap": "sub/../../outside/colormap.json"}},
    ],
    ids=["dotdot", "absolute", "symlink", "config", "bundle", "colormap"],
)
def test_card_paths_cannot_escape_by_any_field(
    tmp_path: Path, change: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    outside, folder = tmp_path / "outside", tmp_path / "model"
    outside.mkdir()
    folder.mkdir()
    (outside / "w.pth").write_bytes(b"secret")
    (folder / "link.pth").symlink_to(outside / "w.pth")
    card = _card(folder, **change)
    with pytest.raises(CardError, match="leaves the card's folder"):
        ModelCard.from_file(card)
    out = tmp_path / "o.nii.gz"
    assert main(["run", "--model", str(card), "--input", _scan(tmp_path), "-o", str(out)]) == 3
    err = capsys.readouterr().err
    assert "leaves the card's folder" in err and not out.exists()


def _calls(tree: ast.AST) -> list[tuple[str, ast.Call]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = func.value if isinstance(func, ast.Attribute) else None
            prefix = owner.id + "." if isinstance(owner, ast.Name) else ""
            found.append((prefix + name, node))
    return found


def test_package_source_never_unpickles_unsafely() -> None:
    """Every torch.load passes weights_only=True; no pickle/marshal/eval/exec/unsafe yaml anywhere."""
    root = Path(napari_brain_dl.__file__).parent
    problems = []
    for path in sorted(root.rglob("*.py")):
        for name, call in _calls(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.relative_to(root)}:{call.lineno} {name}"
            keywords = {k.arg: k.value for k in call.keywords}
            if name == "torch.load":
                flag = keywords.get("weights_only")
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    problems.append(where)
            pickles = name == "np.load" and getattr(keywords.get("allow_pickle"), "value", False) is True
            if pickles or name in UNSAFE_CALLS:
                problems.append(where)
    assert problems == []
