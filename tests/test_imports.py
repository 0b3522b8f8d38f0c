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


def test_core_never_imports_the_command_line() -> None:
    """core is below the CLI: no module of core imports napari_brain_dl.cli* (not even in a function)."""
    import ast
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "napari_brain_dl"
    offenders = []
    for path in sorted((package / "core").rglob("*.py")):
        parts = ["napari_brain_dl", *path.relative_to(package).parts[:-1]]  # the module's package
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = parts[: len(parts) - node.level + 1] if node.level else []
                names = [".".join([*base, node.module])] if node.module else [
                    ".".join([*base, a.name]) for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("napari_brain_dl.cli")]
    assert not offenders, offenders


def test_device_names_need_no_torch() -> None:
    """Widgets and the CLI's parser list the devices from one constant that imports no torch."""
    code = ("import sys; from napari_brain_dl.core.device_names import DEVICES; "
            "assert 'torch' not in sys.modules, 'torch imported'; print(','.join(DEVICES))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "auto,cpu,cuda,mps"
