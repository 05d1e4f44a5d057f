"""Correction operations: pure results, inputs untouched, and one-step undo/redo on a napari Labels layer."""
from __future__ import annotations

import numpy as np
import pytest

from napari_lightseg.correction import (
    diff,
    fill_holes,
    grow_class,
    interpolate_class,
    keep_largest_component,
    remove_small_components,
    shrink_class,
)


def _disc(shape: tuple[int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2


def test_interpolate_between_two_slices():
    labels = np.zeros((9, 32, 32), np.uint8)
    labels[0][_disc((32, 32), (16, 16), 4)] = 3
    labels[8][_disc((32, 32), (16, 16), 12)] = 3
    labels[4, 0, 0] = 3  # a stray ET voxel between the slices is replaced by the interpolation
    labels[4, 16, 16] = 2  # another class inside the shape is kept...
    before = labels.copy()
    out = interpolate_class(labels, 3, 8, 0)  # either order
    np.testing.assert_array_equal(labels, before)  # input untouched
    areas = [(out[k] == 3).sum() for k in range(9)]
    assert all(a < b for a, b in zip(areas, areas[1:]))  # grows monotonically from r=4 to r=12
    middle, inner = out[4] == 3, _disc((32, 32), (16, 16), 7.5)  # halfway: radius 8
    inner[16, 16] = False
    assert middle[inner].all() and not (middle & ~_disc((32, 32), (16, 16), 8.5)).any()
    assert out[4, 0, 0] == 0 and out[4, 16, 16] == 2
    assert interpolate_class(labels, 3, 0, 8, overwrite=True)[4, 16, 16] == 3  # ...unless overwrite


def test_interpolate_moves_shape_and_needs_both_ends():
    labels = np.zeros((5, 20, 40), np.uint8)
    labels[0][_disc((20, 40), (10, 16), 6)] = 1
    labels[4][_disc((20, 40), (10, 24), 6)] = 1  # overlapping shapes, as on nearby slices
    out = interpolate_class(labels, 1, 0, 4)
    centre_x = np.nonzero(out[2] == 1)[1].mean()
    assert centre_x == pytest.approx(20, abs=0.5)
    labels[4] = 0
    with pytest.raises(ValueError, match="slice 4 holds no NCR"):
        interpolate_class(labels, 1, 0, 4)
    with pytest.raises(ValueError, match="class must be one of"):
        interpolate_class(labels, 5, 0, 4)


def test_remove_small_components_per_class_and_whole_tumour():
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:8, 2:8, 2:8] = 2  # 216 voxels of edema
    labels[4, 4, 4] = 3  # a 1-voxel ET speck inside the edema
    labels[15:17, 15:17, 15:17] = 1  # an 8-voxel island
    spacing = (1.0, 1.0, 2.0)  # 2 mm^3 per voxel: island 0.016 mL, speck 0.002 mL
    out = remove_small_components(labels, 0.02, spacing)
    assert out[4, 4, 4] == 0 and not (out == 1).any() and (out == 2).sum() == 215
    whole = remove_small_components(labels, 0.02, spacing, per_class=False)
    assert whole[4, 4, 4] == 3 and not (whole == 1).any()  # the speck belongs to the big tumour
    assert (whole == 2).sum() == 215
    kept = remove_small_components(labels, 0.01, spacing)
    np.testing.assert_array_equal(kept[10:], labels[10:])  # 0.016 mL island >= 0.01 mL: kept
    assert not (remove_small_components(labels, 0.01, (1.0, 1.0, 1.0)) == 1).any()  # 0.008 mL at 1 mm


def test_fill_holes_3d_per_slice_and_whole_tumour():
    labels = np.zeros((7, 9, 9), np.uint8)
    labels[1:6, 1:8, 1:8] = 1
    labels[2:5, 3:6, 3:6] = 0  # an enclosed 3D cavity
    labels[3, 4, 4] = 3  # with another class inside it
    out = fill_holes(labels, 1)
    assert (out[2:5, 3:6, 3:6] == 1).sum() == 26 and out[3, 4, 4] == 3

    tube = np.zeros((5, 9, 9), np.uint8)
    tube[:, 2:7, 2:7] = 2
    tube[:, 4, 4] = 0  # a hole open at both ends: not a 3D hole, but a hole on every slice
    np.testing.assert_array_equal(fill_holes(tube, 2), tube)
    assert (fill_holes(tube, 2, per_slice=True)[:, 4, 4] == 2).all()

    mixed = np.zeros((3, 7, 7), np.uint8)
    mixed[:, 1:6, 1:6] = 2
    mixed[:, 1:6, 1:3] = 1  # left part NCR, right part ED
    mixed[1, 3, 2] = 0  # hole next to NCR
    mixed[1, 3, 4] = 0  # hole next to ED
    out = fill_holes(mixed, None)
    assert out[1, 3, 2] == 1 and out[1, 3, 4] == 2
    assert fill_holes(np.zeros((3, 3, 3), np.uint8)).sum() == 0


def test_grow_and_shrink():
    labels = np.zeros((9, 9, 9), np.uint8)
    labels[4, 4, 4] = 3
    labels[4, 4, 5] = 1  # a neighbour of another class
    grown = grow_class(labels, 3)
    assert (grown == 3).sum() == 6  # the centre and 5 of its 6 face neighbours
    assert grown[4, 4, 5] == 1
    assert (grow_class(labels, 3, voxels=2) == 3).sum() == 23  # 25-voxel octahedron minus NCR and the voxel behind it

    block = np.zeros((9, 9, 9), np.uint8)
    block[2:7, 2:7, 2:7] = 2
    block[4, 4, 4] = 1
    shrunk = shrink_class(block, 2)
    assert (shrunk == 2).sum() == 27 - 1 - 6  # the inner 3x3x3 minus the NCR voxel and the ED around it
    assert shrunk[4, 4, 4] == 1 and shrunk[2, 2, 2] == 0
    np.testing.assert_array_equal(shrink_class(block, 2, voxels=0), block)
    with pytest.raises(ValueError):
        grow_class(block, 2, voxels=-1)


def test_keep_largest_component():
    labels = np.zeros((12, 12, 12), np.uint8)
    labels[1:6, 1:6, 1:6] = 2
    labels[2:4, 2:4, 2:4] = 3  # ET inside the big component stays
    labels[9:11, 9:11, 9:11] = 3  # a separate smaller component of another class goes
    out = keep_largest_component(labels)
    assert (out[9:, 9:, 9:] == 0).all()
    np.testing.assert_array_equal(out[:6, :6, :6], labels[:6, :6, :6])
    np.testing.assert_array_equal(keep_largest_component(out), out)


def test_diff_describes_the_change():
    old = np.zeros((3, 3, 3), np.uint8)
    new = old.copy()
    new[1, 2, 0] = 2
    change = diff(old, new)
    assert change.size == 1 and change.old.tolist() == [0] and change.new.tolist() == [2]
    assert [i.tolist() for i in change.indices] == [[1], [2], [0]]


def test_apply_to_layer_undo_redo_in_one_step():
    from napari.layers import Labels

    from napari_lightseg._qt.layer_edits import apply_to_layer  # napari layers: the viewer side

    data = np.zeros((6, 16, 16), np.uint8)
    data[1:5, 4:12, 4:12] = 2
    data[2, 6, 6] = 0
    layer = Labels(data.copy())
    original = layer.data.copy()

    filled = fill_holes(layer.data, 2)
    change = apply_to_layer(layer, filled)
    assert change.size == 1
    grown = grow_class(layer.data, 2)
    assert apply_to_layer(layer, grown).size > 1
    np.testing.assert_array_equal(layer.data, grown)
    assert apply_to_layer(layer, grown).size == 0  # no change, no history item

    layer.undo()  # the whole grow in one step
    np.testing.assert_array_equal(layer.data, filled)
    layer.undo()
    np.testing.assert_array_equal(layer.data, original)
    layer.redo()
    np.testing.assert_array_equal(layer.data, filled)
    layer.redo()
    np.testing.assert_array_equal(layer.data, grown)
    layer.undo()
    np.testing.assert_array_equal(layer.data, filled)
