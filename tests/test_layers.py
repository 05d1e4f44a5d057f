"""Pure display helpers: class table in layers, legend, orientation letters (LPS, RAS, permuted), 3D surfaces."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from napari_lightseg.display import (
    axis_end_letters,
    class_features,
    class_surfaces,
    legend_html,
    legend_rows,
    legend_text,
    marker_positions,
    plane_markers,
    tumour_center_slice,
)
from napari_lightseg.io import CLASS_COLORS, CLASS_NAMES, Geometry
from napari_lightseg.layers import labels_layer
from napari_lightseg.models import list_cards

SHAPE = (20, 30, 40)  # file array shape


def _geometry(affine: np.ndarray, shape: tuple[int, int, int] = SHAPE) -> Geometry:
    return Geometry.from_image(nib.Nifti1Image(np.zeros(shape, np.float32), affine))


LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
RAS = np.eye(4)
PERMUTED = np.array([[0, 0, -1.0, 0], [1.0, 0, 0, 0], [0, -1.0, 0, 0], [0, 0, 0, 1]])  # array axes: A, I, L


@pytest.mark.parametrize("affine", [LPS, RAS, PERMUTED], ids=["LPS", "RAS", "permuted"])
def test_axial_markers_are_radiological_for_any_file_orientation(affine: np.ndarray) -> None:
    markers = plane_markers(_geometry(affine).display_affine, (1, 2))
    assert markers.as_dict() == {"top": "A", "bottom": "P", "left": "R", "right": "L"}
    assert markers.convention == "radiological"
    coronal = plane_markers(_geometry(affine).display_affine, (0, 2))  # rows = axis 0: inferior first
    assert (coronal.top, coronal.bottom, coronal.left, coronal.right) == ("I", "S", "R", "L")
    sagittal = plane_markers(_geometry(affine).display_affine, (0, 1))
    assert (sagittal.left, sagittal.right, sagittal.convention) == ("A", "P", "")


def test_markers_follow_the_raw_affine() -> None:
    """The letters come from the affine, not from an assumed orientation."""
    assert axis_end_letters(np.array([1.0, 0, 0])) == ("L", "R")  # RAS+: +x is the patient's right
    assert axis_end_letters(np.array([0, -0.9, 0.2])) == ("A", "P")  # oblique: the largest component wins
    assert plane_markers(RAS, (1, 0)).as_dict() == {"top": "P", "bottom": "A", "left": "L", "right": "R"}
    assert plane_markers(RAS, (1, 0)).convention == "neurological"
    assert plane_markers(PERMUTED, (0, 2)).as_dict() == {"top": "P", "bottom": "A", "left": "R", "right": "L"}


def test_marker_positions_sit_on_the_current_slice() -> None:
    positions = marker_positions((10, 100, 200), (1, 2), (7.0, 50.0, 100.0))
    assert {p[0] for p in positions.values()} == {7.0}
    assert positions["top"][1] < positions["bottom"][1] and positions["left"][2] < positions["right"][2]
    assert all(0 <= p[1] <= 100 and 0 <= p[2] <= 200 for p in positions.values())


def test_labels_layer_carries_class_names_for_hover() -> None:
    features = class_features()
    assert features["index"] == [0, 1, 2, 3]
    assert [features["class"][features["index"].index(v)] for v in CLASS_NAMES] == list(CLASS_NAMES.values())
    _, kwargs, kind = labels_layer(np.zeros((2, 3, 4), np.uint8), _geometry(RAS, (4, 3, 2)), "m")
    assert kind == "labels" and kwargs["features"]["class"][3] == "ET"
    assert kwargs["colormap"][3] == CLASS_COLORS[3]


def test_legend_volumes_names_and_colours() -> None:
    classes = np.zeros((10, 10, 10), np.uint8)
    classes[0, 0, :5] = 1  # 5 NCR voxels
    classes[1] = 2  # 100 ED voxels
    classes[2, :2, :2] = 3  # 4 ET voxels
    rows = legend_rows(classes, (2.0, 1.0, 1.0))  # 2 uL per voxel
    assert [r.name for r in rows] == ["NCR", "ED", "ET", "WT"]
    assert [round(r.volume_ml, 4) for r in rows] == [0.01, 0.2, 0.008, 0.218]
    assert legend_text(rows) == "NCR 0.0 mL · ED 0.2 mL · ET 0.0 mL · WT 0.2 mL"
    html = legend_html("unet-int8", rows)
    assert "unet-int8" in html and all(color in html for color in CLASS_COLORS.values())


def test_surfaces_per_class_and_the_slice_to_open_on() -> None:
    z, y, x = np.indices((30, 30, 30))
    r = np.sqrt((z - 18) ** 2 + (y - 15) ** 2 + (x - 15) ** 2)
    classes = np.select([r < 3, r < 6, r < 10], [1, 3, 2], 0).astype(np.uint8)
    surfaces = {s.name: s for s in class_surfaces(classes)}
    assert set(surfaces) == {"NCR", "ED", "ET"}
    et = surfaces["ET"]
    assert et.color == CLASS_COLORS[3] and len(et.faces) > 50
    center = et.vertices.mean(axis=0)
    np.testing.assert_allclose(center, (18, 15, 15), atol=0.5)  # in array indices, on the blob
    assert tumour_center_slice(classes) == 18
    assert tumour_center_slice(np.zeros((3, 3, 3))) is None


def test_cards_say_training_free_instead_of_na() -> None:
    cards = list_cards()
    pcnn = [c for c in cards if c.kind == "pcnn"]
    if not pcnn:
        pytest.skip("no PCNN card shipped")
    for card in pcnn:
        label, described = card.short_label(), card.describe()
        assert "training-free" in label and "n/a" not in label and "0.00 MB" not in label
        assert described["precision"] == "training-free" and described["MB"] == "-"
        assert "nan" not in " ".join(described.values())
    cnn = next(c for c in cards if c.kind == "cnn")
    assert f"{cnn.file_mb:.2f} MB" in cnn.short_label()
