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


#: Packages slow enough to import that a module may defer them into the function that needs them.
HEAVY = {"torch", "monai", "captum", "napari", "magicgui", "vispy", "superqt", "qtpy", "PyQt5", "PyQt6",
         "PySide2", "PySide6", "SimpleITK", "nibabel", "pydicom", "highdicom", "nilearn", "scipy", "skimage",
         "matplotlib", "pandas", "dask", "distributed", "reportlab", "npe2", "safetensors", "cryptography"}


def _module_imports() -> dict[str, tuple[list[tuple[int, str]], list[tuple[int, str]]]]:
    """Module -> (imports when it loads, imports inside functions), each as (line, imported name)."""
    import ast
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "napari_brain_dl"
    found: dict[str, tuple[list[tuple[int, str]], list[tuple[int, str]]]] = {}
    for path in sorted(package.rglob("*.py")):
        parts = ["napari_brain_dl", *path.relative_to(package).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if is_package else parts)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        loads = {id(n) for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)}
        for node in ast.walk(tree):  # imports inside functions are deferred, the rest load with the module
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                loads -= {id(n) for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom)}
        at_load: list[tuple[int, str]] = []
        deferred: list[tuple[int, str]] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1] if node.level else []
                root = ".".join([*base, node.module] if node.module else base)
                names = [f"{root}.{a.name}" for a in node.names]  # a submodule, or a name in `root`
            else:
                continue
            (at_load if id(node) in loads else deferred).extend((node.lineno, n) for n in names)
        found[module] = (at_load, deferred)
    return found


def test_function_level_imports_are_for_heavy_packages_only() -> None:
    """An import inside a function is for a heavy package, or a module of ours that loads one (#18)."""
    modules = _module_imports()

    def own_module(name: str) -> str:
        return name if name in modules else name.rsplit(".", 1)[0]

    def loads_heavy(name: str) -> bool:  # the napari side (napari_brain_dl._napari) counts as napari
        if name.startswith("napari_brain_dl._napari"):
            return True
        if name.startswith("napari_brain_dl."):
            return is_heavy(own_module(name))
        return name.split(".")[0] in HEAVY

    heavy: dict[str, bool] = {}

    def is_heavy(module: str) -> bool:
        if module not in heavy:
            heavy[module] = False  # while visiting: import cycles end here
            parents = [".".join(module.split(".")[:i]) for i in range(2, module.count(".") + 1)]
            heavy[module] = any(is_heavy(p) for p in parents if p in modules) or any(
                loads_heavy(n) for _, n in modules[module][0])
        return heavy[module]

    light = [f"{module}:{line} {name}" for module, (_, deferred) in sorted(modules.items())
             for line, name in deferred if not loads_heavy(name)]
    assert not light, f"{len(light)} function-level imports of light modules: {light}"
