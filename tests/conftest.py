"""Shared fixtures: the real scans and models in ../shared/data (read only, never copied)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["_no_network"]  # no network for the whole session (see tests/_no_network.py)

SHARED_DATA = Path(
    os.environ.get("NAPARI_BRAIN_DL_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Folder of real test scans; every test using it fails loudly when it is missing."""
    assert SHARED_DATA.is_dir(), f"test data folder {SHARED_DATA} is missing"
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_user_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep user settings (added model folders, trust) out of the real home folder."""
    monkeypatch.setenv("NAPARI_BRAIN_DL_HOME", str(tmp_path_factory.mktemp("user_home")))


def write_rule_tumor_card(folder: Path) -> Path:
    """TC = T1c_z > 1.5, WT = FLAIR_z > 1.5, ET = T1c_z > 2.5 (sigmoid of a steep 1x1x1 conv)."""
    import torch
    import yaml

    weight = torch.zeros(3, 4, 1, 1, 1)
    weight[0, 1] = weight[1, 0] = weight[2, 1] = 20.0
    torch.save(
        {"model.0.weight": weight, "model.0.bias": torch.tensor([-30.0, -30.0, -50.0])}, folder / "rule.pth"
    )
    card = {
        "id": "rule-tumor",
        "name": "Rule",
        "task": "segmentation",
        "inputs": ["FLAIR", "T1c", "T1", "T2"],
        "orientation": "LPS",
        "preprocessing": [{"op": "zscore_foreground"}],
        "postprocessing": [{"op": "sigmoid"}, {"op": "brats_regions", "threshold": 0.5, "enhancing": 3}],
        "output": {"kind": "labels", "channels": ["TC", "WT", "ET"]},
        "architecture": {
            "type": "meshnet",
            "layers": [{"in_channels": 4, "out_channels": 3, "kernel_size": 1, "padding": 0}],
        },
        "weights": {"file": "rule.pth"},
        "inference": {"mode": "whole", "crop": "head", "margin": 4},
    }
    (folder / "rule.yaml").write_text(yaml.safe_dump(card))
    return folder / "rule.yaml"


@pytest.fixture(scope="session")
def rule_card(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Path of a deterministic stand-in tumour model card (see `write_rule_tumor_card`)."""
    return str(write_rule_tumor_card(tmp_path_factory.mktemp("rule_card")))
