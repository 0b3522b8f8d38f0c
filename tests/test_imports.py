"""Compute never pulls in Qt/napari, and importing the package is cheap."""

from __future__ import annotations

import subprocess
import sys


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_core_and_cli_do_not_import_qt_or_napari() -> None:
    import pkgutil

    import napari_brain_dl.core as core

    names = [m.name for m in pkgutil.walk_packages(core.__path__, "napari_brain_dl.core.")]
    statement = "import napari_brain_dl.cli; " + "; ".join(f"import {n}" for n in names)
    loaded = _loaded_after(statement)
    for forbidden in ("qtpy", "PyQt5", "napari", "magicgui", "vispy"):
        assert forbidden not in loaded, f"{forbidden} imported by core/cli"


def test_package_import_loads_neither_torch_nor_qt() -> None:
    loaded = _loaded_after("import napari_brain_dl")
    assert "torch" not in loaded and "qtpy" not in loaded
