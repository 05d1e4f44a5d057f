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


# Each top-level module or package of the plugin by layer: a module may import its own layer or lower ones,
# never a higher one (lazy imports inside functions count too). A new module must be placed here.
LAYERS: dict[str, int] = {
    "__init__": 0, "models": 0, "progress": 0, "energy": 0, "arrays": 0,  # leaves
    "io": 1,  # reading and writing studies, masks, DICOM
    "types": 2, "preprocess": 2, "display": 2, "metrics": 2, "backends": 2, "inference": 2,  # nouns and pure compute
    "postprocess": 3, "pcnn": 3, "correction": 3, "layers": 3, "compare": 3,
    "engine": 4, "clinical": 4,  # a run; a clinical study opened end to end
    "clinical_view": 5, "compare_jobs": 5, "cohort": 5,  # what the GUI and batch build on the engine
    "cli_batch": 6, "_reader": 6, "_writer": 6, "_sample_data": 6,  # entry points: npe2 hooks, CLI parts
    "cli": 7, "serve": 7, "_qt": 7,  # the terminal (and its warm server) and the widgets
    "_entry": 8,  # the console script: a served job, else the CLI
}


def _package_imports(path: Path) -> set[str]:
    """Top-level plugin modules that ``path`` imports, relative or absolute, at any depth of the file."""
    own = list(path.relative_to(PACKAGE).with_suffix("").parts)
    package = own[:-1]  # the package a relative import starts from (an __init__'s own package too)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = package[: len(package) - (node.level - 1)]
            target = base + (node.module.split(".") if node.module else [])
            found.update([target[0]] if target else [alias.name for alias in node.names])
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("napari_lightseg."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("napari_lightseg."))
    return found - {"__version__"}


def _module_of(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def test_no_module_imports_upward() -> None:
    unplaced = sorted({_module_of(p) for p in PACKAGE.rglob("*.py")} - set(LAYERS))
    assert unplaced == [], f"place these modules in LAYERS: {unplaced}"
    upward = sorted((_module_of(p), target, str(p.relative_to(PACKAGE))) for p in PACKAGE.rglob("*.py")
                    for target in _package_imports(p) if target in LAYERS and target != _module_of(p)
                    and LAYERS[target] > LAYERS[_module_of(p)])
    assert upward == []


def test_compute_never_imports_widgets_or_hooks() -> None:
    hooks = {"_qt", "cli", "cli_batch", "serve", "_entry", "_reader", "_writer", "_sample_data"}
    offenders = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                       if _module_of(p) not in hooks and _package_imports(p) & hooks)
    assert offenders == []


def test_straight_dependencies() -> None:
    """The engine post-processes through ``postprocess``, not the manual-correction tools; array helpers come
    from ``arrays``; masks are saved through ``io``, never through the npe2 writer hook."""
    assert "correction" not in _package_imports(PACKAGE / "engine.py")
    for name in ("metrics.py", "correction.py", "postprocess.py", "pcnn/detect.py"):
        assert "preprocess" not in _package_imports(PACKAGE / name), name
    source = (PACKAGE / "preprocess" / "__init__.py").read_text()
    assert "def bounding_box" not in source
    users_of_hook = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "_writer" in _package_imports(p))
    assert users_of_hook == []


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
    """A NIfTI case segmented into NIfTI never loads the DICOM stack (pydicom, highdicom, SimpleITK), nor
    scipy.ndimage (post-processing labels with cc3d, ``arrays.label``)."""
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
    assert loaded & {"pydicom", "highdicom", "SimpleITK", "scipy.ndimage"} == set()



def test_brain_extraction_imports_no_scipy_ndimage() -> None:
    """A full-head study's brain extraction fills holes with cc3d (``arrays.fill_holes``): SciPy's ~0.3 s import
    is not paid on the clinical path."""
    code = ("import numpy as np\nfrom napari_lightseg.preprocess import brain_extraction as bx\n"
            "head = np.zeros((40, 44, 36), np.float32)\nhead[8:32, 8:36, 8:28] = 100.0\n"
            "head[12:28, 12:32, 12:24] = 300.0\nbx.extract_brain(head, size=64, threads=1)")
    assert "scipy.ndimage" not in _loaded_after(code)
