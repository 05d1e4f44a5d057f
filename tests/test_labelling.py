"""Connected components and bounding boxes without scipy.ndimage (``arrays.label``: cc3d; ``bounding_box``: NumPy)
give exactly what the scipy formulation gave: the same ids in the same order, the same boxes, and so the same
post-processed labels and detections (largest first, ties in scan order) and the same brain-extraction decisions."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_lightseg import postprocess
from napari_lightseg.arrays import _raster_order, bounding_box, label
from napari_lightseg.metrics import voxel_ml
from napari_lightseg.preprocess import brain_extraction as bx
from napari_lightseg.types import Box, Detection

RNG = np.random.default_rng(20240612)


# ------------------------------------------------------------------------------ the scipy formulation
def scipy_label(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    return ndimage.label(mask, structure=ndimage.generate_binary_structure(mask.ndim, connectivity))


def scipy_bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...]:
    found = ndimage.find_objects(np.asarray(mask).astype(np.uint8))
    if not found or found[0] is None:
        return tuple(slice(0, n) for n in mask.shape)
    return tuple(slice(max(s.start - margin, 0), min(s.stop + margin, n)) for s, n in zip(found[0], mask.shape))


def scipy_components(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    ids, _ = scipy_label(mask, connectivity)
    return ids, np.bincount(ids.ravel())


def scipy_detections(ids: np.ndarray, offset: np.ndarray, spacing: tuple[float, ...]) -> list[Detection]:
    found = []
    for index, sub in enumerate(ndimage.find_objects(ids), start=1):
        if sub is None:
            continue
        mask = ids[sub] == index
        start = offset + [s.start for s in sub]
        cz, cy, cx = (float(c) for c in np.array(ndimage.center_of_mass(mask)) + start)
        stop = offset + [s.stop - 1 for s in sub]
        found.append(Detection(Box.of(start, stop), (cz, cy, cx), float(mask.sum()) * voxel_ml(spacing), source="components"))
    return sorted(found, key=lambda d: -(d.volume_ml or 0.0))


def scipy_find_components(labels: np.ndarray, spacing: tuple[float, ...]) -> list[Detection]:
    if not labels.any():
        return []
    box = scipy_bounding_box(labels > 0, margin=1)
    ids, _ = ndimage.label(labels[box] > 0, structure=np.ones((3, 3, 3)))
    return scipy_detections(ids, np.array([s.start for s in box]), spacing)


def scipy_clean_and_find(labels: np.ndarray, min_ml: float, spacing: tuple[float, ...]):
    out = np.array(labels, copy=True)
    if not out.any():
        return out, []
    box = scipy_bounding_box(out > 0)
    view = out[box]
    ids, sizes = scipy_components(view > 0, 3)
    small = sizes < float(min_ml) / voxel_ml(spacing)
    small[0] = False
    if small.any():
        gone = small[ids]
        view[gone] = 0
        ids[gone] = 0
    return out, scipy_detections(ids, np.array([s.start for s in box]), spacing)


def scipy_keep_largest(labels: np.ndarray, connectivity: int = 3) -> np.ndarray:
    out = np.array(labels, copy=True)
    view = out[scipy_bounding_box(out > 0)]
    ids, sizes = scipy_components(view > 0, connectivity)
    if sizes.size <= 2:
        return out
    sizes[0] = 0
    view[(ids != int(np.argmax(sizes))) & (ids > 0)] = 0
    return out


def scipy_largest_component(mask: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    if count <= 1:
        return labels > 0
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(sizes.argmax())


# ------------------------------------------------------------------------------------------ the cases
def _random_masks(ndim: int, count: int) -> list[np.ndarray]:
    masks = []
    for _ in range(count):
        shape = tuple(int(n) for n in RNG.integers(1, 14 if ndim == 3 else 40, size=ndim))
        masks.append(RNG.random(shape) < RNG.uniform(0.02, 0.8))
    return masks


def _structured_masks() -> list[np.ndarray]:
    """Empty, full, single voxels (corner, middle), components touching every face, equal-sized blobs,
    diagonal chains (joined at 26 and 18, apart at 6), and a shell around a core."""
    cases = [np.zeros((5, 6, 7), bool), np.ones((4, 5, 6), bool), np.zeros((1, 1, 1), bool), np.ones((1, 1, 1), bool)]
    one = np.zeros((6, 6, 6), bool)
    one[0, 0, 0] = True
    cases.append(one)
    one = np.zeros((6, 6, 6), bool)
    one[3, 2, 4] = True
    cases.append(one)
    faces = np.zeros((8, 9, 10), bool)
    faces[0, :, :3] = faces[-1, 4:, :] = faces[:, 0, 5:] = faces[:, -1, :2] = faces[2:5, :, 0] = faces[:, 3:6, -1] = True
    cases.append(faces)
    ties = np.zeros((12, 12, 12), bool)
    ties[1:3, 1:3, 1:3] = ties[8:10, 1:3, 1:3] = ties[1:3, 8:10, 8:10] = ties[9:11, 9:11, 5:7] = True  # four of 8 voxels
    ties[6, 6, 6] = ties[0, 11, 0] = True
    cases.append(ties)
    diagonal = np.zeros((7, 7, 7), bool)
    for k in range(7):
        diagonal[k, k, k] = True  # corners only
        diagonal[k, k, 6 - k] = True
        diagonal[0, k, (k + 3) % 7] = True  # edges in a plane
    cases.append(diagonal)
    shell = np.zeros((9, 9, 9), bool)
    shell[1:8, 1:8, 1:8] = True
    shell[2:7, 2:7, 2:7] = False
    shell[4, 4, 4] = True
    cases.append(shell)
    comb = np.zeros((5, 10, 10), bool)  # teeth that meet late in the scan: provisional ids get merged
    comb[:, ::2, :] = True
    comb[:, :, 0] = False
    comb[-1, :, 0] = True
    cases.append(comb)
    return cases


MASKS_3D = _structured_masks() + _random_masks(3, 150)
MASKS_2D = [np.zeros((4, 5), bool), np.ones((3, 3), bool), np.eye(6, dtype=bool), np.fliplr(np.eye(6, dtype=bool))] + _random_masks(2, 150)


@pytest.mark.parametrize("masks", [MASKS_3D, MASKS_2D], ids=["3d", "2d"])
@pytest.mark.parametrize("connectivity", [1, 2, 3])
def test_label_matches_scipy(masks, connectivity):
    """Same ids, same count; 2D 8-connectivity is where cc3d's own numbering departed most (routed to scipy)."""
    for mask in masks:
        expected, count = scipy_label(mask, connectivity)
        ids, n = label(mask, connectivity)
        assert n == count
        np.testing.assert_array_equal(ids, expected)


def test_label_any_layout_and_dtype():
    """Fortran order (nibabel's), strided views, and non-bool masks (every non-zero voxel is foreground)."""
    for mask in MASKS_3D[:60]:
        expected, _ = scipy_label(mask, 3)
        np.testing.assert_array_equal(label(np.asfortranarray(mask), 3)[0], expected)
        values = mask * RNG.integers(1, 4, size=mask.shape).astype(np.uint8)
        np.testing.assert_array_equal(label(values, 3)[0], expected)
        np.testing.assert_array_equal(label(values.astype(np.float32) / 7, 3)[0], expected)
        view = mask[::-1, :, ::2]
        np.testing.assert_array_equal(label(view, 2)[0], scipy_label(view, 2)[0])


def test_label_other_dimensions_and_thin_shapes():
    """1D goes through scipy, and so do 3D lines (cc3d 4.1's 26-connectivity raises on some); slabs go through cc3d."""
    line = RNG.random(50) < 0.5
    np.testing.assert_array_equal(label(line, 1)[0], scipy_label(line, 1)[0])
    assert label(line, 1)[1] == scipy_label(line, 1)[1]
    for shape in [(1, 1, 5), (1, 5, 1), (7, 1, 1), (1, 1, 1), (1, 6, 7), (6, 1, 7), (6, 7, 1), (2, 1, 9), (1, 2, 2)]:
        for _ in range(30):
            mask = RNG.random(shape) < RNG.uniform(0.2, 0.9)
            for connectivity in (1, 2, 3):
                expected, count = scipy_label(mask, connectivity)
                ids, n = label(mask, connectivity)
                assert n == count
                np.testing.assert_array_equal(ids, expected)


def test_label_larger_random_volumes():
    for _ in range(300):
        mask = RNG.random(tuple(int(n) for n in RNG.integers(2, 30, size=3))) < RNG.uniform(0.02, 0.9)
        if RNG.random() < 0.3:
            mask = ndimage.binary_opening(mask)
        for connectivity in (1, 3):
            np.testing.assert_array_equal(label(mask, connectivity)[0], scipy_label(mask, connectivity)[0])


def test_sizes_only_labelling_has_the_same_components():
    for mask in MASKS_3D:
        expected, count = scipy_label(mask, 1)
        ids, n = label(mask, 1, raster_order=False)
        assert n == count
        np.testing.assert_array_equal(np.sort(np.bincount(ids.ravel())[1:]), np.sort(np.bincount(expected.ravel())[1:]))


def test_raster_order_renumbers_a_permutation():
    expected, count = scipy_label(MASKS_3D[7], 3)  # the ties case: six components
    assert count == 6
    permutation = np.array([0, 4, 6, 1, 5, 3, 2], dtype=np.uint32)
    np.testing.assert_array_equal(_raster_order(permutation[expected], count), expected)
    np.testing.assert_array_equal(_raster_order(expected.astype(np.uint32), count), expected)


@pytest.mark.parametrize("margin", [0, 1, 3])
def test_bounding_box_matches_find_objects(margin):
    for mask in MASKS_3D + MASKS_2D + [RNG.random(30) < 0.2]:
        assert bounding_box(mask, margin) == scipy_bounding_box(mask, margin)
        assert all(type(s.start) is int and type(s.stop) is int for s in bounding_box(mask, margin))
    assert bounding_box(np.zeros((0, 3, 4), bool), margin) == (slice(0, 0), slice(0, 3), slice(0, 4))  # scipy raises


def _label_volumes() -> list[np.ndarray]:
    """Class volumes (0-3): the random and structured masks with random classes, and BraTS-like blobs with islands."""
    volumes = [mask * RNG.integers(1, 4, size=mask.shape).astype(np.uint8) for mask in MASKS_3D]
    for _ in range(20):
        volume = np.zeros((24, 30, 28), np.uint8)
        zz, yy, xx = np.mgrid[:24, :30, :28]
        for _ in range(int(RNG.integers(1, 5))):
            centre, radius = RNG.uniform(0, 28, 3), RNG.uniform(1, 7)
            volume[(zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= radius ** 2] = RNG.integers(1, 4)
        volume[RNG.random(volume.shape) < 0.01] = 2
        volumes.append(volume)
    return volumes


VOLUMES = _label_volumes()


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.2, 0.9, 0.9)])
def test_postprocess_matches_scipy(spacing):
    """The engine's path (clean_and_find), find_components and keep_largest_component: equal labels and equal
    detections -- boxes, centres and volumes to the bit, in the same order (equal volumes: scan order)."""
    for volume in VOLUMES:
        expected_labels, expected_found = scipy_clean_and_find(volume, 0.004, spacing)
        out, found = postprocess.clean_and_find(volume, 0.004, spacing)
        np.testing.assert_array_equal(out, expected_labels)
        assert found == expected_found
        assert postprocess.find_components(volume, spacing) == scipy_find_components(volume, spacing)
        for connectivity in (1, 3):
            np.testing.assert_array_equal(postprocess.keep_largest_component(volume, connectivity),
                                          scipy_keep_largest(volume, connectivity))


def test_ties_in_size_keep_scan_order():
    volume = MASKS_3D[7].astype(np.uint8)  # four components of 8 voxels, two single voxels
    found = postprocess.find_components(volume, (1.0, 1.0, 1.0))
    assert [d.volume_ml for d in found] == [0.008] * 4 + [0.001] * 2
    assert [d.box.lo for d in found] == [(1, 1, 1), (1, 8, 8), (8, 1, 1), (9, 9, 5), (0, 11, 0), (6, 6, 6)]
    assert found == scipy_find_components(volume, (1.0, 1.0, 1.0))
    kept = postprocess.keep_largest_component(volume)
    assert kept.sum() == 8 and kept[1:3, 1:3, 1:3].all()


def test_brain_extraction_components_match_scipy():
    for mask in MASKS_3D:
        np.testing.assert_array_equal(bx.largest_component(mask), scipy_largest_component(mask))
    volume = np.zeros((30, 30, 30), np.float32)
    volume[5:25, 5:25, 5:25] = 1.0
    volume[0, 0, 0] = 1.0  # a second, tiny region: still one large one
    assert bx.looks_skull_stripped(volume)
    volume[5:25, 14:16, 5:25] = 0  # two halves
    assert not bx.looks_skull_stripped(volume)
    volume[5:25, 14:16, 15] = 1.0  # joined by a face-connected bridge
    assert bx.looks_skull_stripped(volume)
    volume[5:25, 14:16, 15] = 0
    volume[5:25, 14, 15] = volume[5:25, 15, 16] = 1.0  # by an edge only: apart (face neighbours, as scipy's default)
    assert not bx.looks_skull_stripped(volume)


def test_fill_holes_matches_scipy():
    """``arrays.fill_holes`` (brain extraction's last step, through cc3d) is ``ndimage.binary_fill_holes``."""
    from napari_lightseg.arrays import fill_holes

    masks = [*MASKS_3D, *MASKS_2D]
    cavity = np.ones((7, 8, 9), bool)
    cavity[2:5, 3:5, 3:7] = False  # a closed hole
    cavity[3, 0:4, 4] = False  # a tunnel to the border: stays open
    masks.append(cavity)
    for mask in masks:
        got = fill_holes(mask)
        assert got.dtype == bool and np.array_equal(got, ndimage.binary_fill_holes(mask)), mask.shape
