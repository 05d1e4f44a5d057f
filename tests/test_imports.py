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


def _loaded_after(code: str) -> set[str]:
    """Top modules loaded by ``code`` in a fresh interpreter (the package from this checkout)."""
    import json
    import os
    import subprocess
    import sys

    heavy = ["pydicom", "SimpleITK", "highdicom", "scipy.ndimage", "requests", "importlib.metadata"]
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_cli_start_imports_no_dicom_or_scipy_ndimage() -> None:
    """``lightseg`` starts without pydicom (nibabel would import it), SimpleITK, highdicom or scipy.ndimage:
    each costs 0.1-0.4 CPU s at every start (benchmarks/RESULTS_speed.md)."""
    assert _loaded_after("import napari_lightseg.cli") == set()


def test_pydicom_still_importable_after_io() -> None:
    """Hiding pydicom from nibabel is temporary: the DICOM reader can still import it."""
    assert "pydicom" in _loaded_after("import napari_lightseg.io\nimport pydicom")


def test_segment_nifti_imports_no_dicom(tmp_path: Path) -> None:
    """A NIfTI case segmented into NIfTI never loads the DICOM stack (pydicom, highdicom, SimpleITK)."""
    from napari_lightseg._sample_data import write_sample_case
    from napari_lightseg.models import list_cards

    cards = [c.name for c in list_cards() if c.kind == "cnn"]
    if not cards:
        import pytest

        pytest.skip("no shipped CNN models")
    case = write_sample_case(tmp_path / "sample", seed=1)
    out = tmp_path / "seg.nii.gz"
    loaded = _loaded_after(f"from napari_lightseg.cli import main\nassert main(['segment', {str(case)!r}, "
                           f"'--model', {cards[0]!r}, '--out', {str(out)!r}]) == 0")
    assert out.exists()
    assert loaded & {"pydicom", "highdicom", "SimpleITK"} == set()
