"""The import graph: the shipped plugin never imports the training code, and Qt stays in ``_qt/``."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "napari_lightseg"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_plugin_never_imports_training_code() -> None:
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if any(
        name.split(".")[0] == "src_models" for name in _imports(p))]
    assert offenders == []


def test_qt_only_in_qt_package() -> None:
    qt = ("qtpy", "PyQt6", "PyQt5", "PySide2", "PySide6")
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "_qt" not in p.parts and any(
        name.split(".")[0] in qt for name in _imports(p))]
    assert offenders == []
