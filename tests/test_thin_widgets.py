"""Thin widgets (issue #14): no file of the Qt layer grows past ~250 lines; compute belongs in pure modules."""
from __future__ import annotations

from pathlib import Path

import napari_lightseg

MAX_LINES = 250
QT_DIR = Path(napari_lightseg.__file__).parent / "_qt"


def test_no_qt_module_over_250_lines() -> None:
    files = sorted(QT_DIR.glob("*.py"))
    assert len(files) > 5, f"no Qt modules found in {QT_DIR}"
    too_long = {f.name: n for f in files if (n := len(f.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not too_long, f"split these widgets (limit {MAX_LINES} lines): {too_long}"


def test_correction_keeps_array_operations_only() -> None:
    """Writing into napari layers is the viewer side's job (``_qt.layer_edits``), not ``correction``'s."""
    from napari_lightseg import correction
    from napari_lightseg._qt import layer_edits

    assert not hasattr(correction, "apply_to_layer") and callable(layer_edits.apply_to_layer)


def test_slice_rectangles_cover_each_box_on_its_own_slice() -> None:
    """The PCNN's per-slice boxes as napari rectangles (computed in ``display``, not in the widget)."""
    from types import SimpleNamespace

    import numpy as np

    from napari_lightseg.display import slice_rectangles

    box = SimpleNamespace(z=7, y0=2, x0=3, y1=5, x1=9)  # inclusive voxel indices
    (rectangle,) = slice_rectangles([box])
    assert rectangle.shape == (4, 3) and set(rectangle[:, 0]) == {7.0}
    assert rectangle[:, 1].min() == 2 and rectangle[:, 1].max() == 6  # voxel edges: y1 + 1
    assert rectangle[:, 2].min() == 3 and rectangle[:, 2].max() == 10
    assert slice_rectangles([]) == []
    assert np.array_equal(slice_rectangles([box, box])[1], rectangle)


def test_geometry_for_shape_borrows_an_open_study_grid() -> None:
    """One rule (``layers.geometry_for_shape``) for the writer and the correction widget: a hand-drawn
    mask takes the grid of an open layer of its shape, and none of another shape."""
    from types import SimpleNamespace

    from helpers import blob_study

    from napari_lightseg.layers import geometry_for_shape, study_layers

    study = blob_study()
    layers = [SimpleNamespace(metadata={}), *(SimpleNamespace(metadata=kwargs["metadata"]) for _, kwargs, _ in study_layers(study))]
    assert geometry_for_shape(layers, study.geometry.display_shape) is study.geometry
    assert geometry_for_shape(layers, (1, 2, 3)) is None
    assert geometry_for_shape([], study.geometry.display_shape) is None


def test_series_rows_carry_their_tooltip() -> None:
    """The series table's hover text is built in ``clinical_view`` (the panel only shows it)."""
    from napari_lightseg.clinical_view import series_rows

    table = [{"number": 2, "description": "AX T2 FLAIR", "size": "36x40x12", "spacing_mm": "0.9x0.9x2", "tr_ms": 9000,
              "te_ms": None, "usable": True, "reason": "", "series_uid": "1.2", "sequence": "flair"}]
    (row,) = series_rows(table, {"flair": "1.2"})
    assert row["tooltip"].splitlines() == ["role: FLAIR", "spacing: 0.9x0.9x2 mm", "tr_ms: 9000"]
