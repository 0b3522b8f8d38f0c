"""Shared fixtures: the real scans and models in ../shared/data (read only, never copied)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("NAPARI_BRAIN_DL_TEST_DATA",
                                  Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Folder of real test scans; every test using it fails loudly when it is missing."""
    assert SHARED_DATA.is_dir(), f"test data folder {SHARED_DATA} is missing"
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_user_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep user settings (added model folders, trust) out of the real home folder."""
    monkeypatch.setenv("NAPARI_BRAIN_DL_HOME", str(tmp_path_factory.mktemp("user_home")))
