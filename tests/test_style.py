"""The code base stays ruff-clean (rules in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean() -> None:
    folders = ["napari_brain_dl", "tests", "bench", "scripts"]
    result = subprocess.run([sys.executable, "-m", "ruff", "check", *folders],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
