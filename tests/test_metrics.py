"""Metrics: hand-computed Dice / HD95 / volumes, empty cases, region mapping, and MedPy's hd95 where installed."""
from __future__ import annotations

import math

import numpy as np
import pytest

from napari_lightseg.metrics import class_volumes_ml, dice, hd95, region_scores, volume_ml


def _cube(shape=(20, 20, 20), start=(5, 5, 5), size=4) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[tuple(slice(s, s + size) for s in start)] = True
    return mask


def test_dice_hand_computed():
    a, b = np.zeros(10, bool), np.zeros(10, bool)
    a[:4], b[2:6] = True, True  # overlap 2, sizes 4 + 4
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(a, a) == 1.0
    assert dice(a, ~a) == 0.0


def test_empty_cases():
    empty, cube = np.zeros((5, 5, 5), bool), _cube((5, 5, 5), (1, 1, 1), 2)
    assert dice(empty, empty) == 1.0
    assert dice(empty, cube) == 0.0
    assert hd95(empty, empty) == 0.0
    assert math.isinf(hd95(empty, cube)) and math.isinf(hd95(cube, empty))


def test_hd95_single_voxels_at_known_distance():
    a, b = np.zeros((10, 10, 10), bool), np.zeros((10, 10, 10), bool)
    a[2, 3, 4], b[5, 7, 4] = True, True  # offset (3, 4, 0) voxels
    assert hd95(a, b) == pytest.approx(5.0)
    assert hd95(a, b, (2.0, 1.0, 1.0)) == pytest.approx(math.hypot(6.0, 4.0))


def test_hd95_cubes_offset_by_k_voxels():
    # A 4-voxel cube shifted by k along axis 0: no surface voxel is farther than k from the other
    # surface and well over 5 % of them (the side faces) are exactly k away, so the 95th percentile is k.
    for k in (1, 2, 3):
        a, b = _cube(), _cube(start=(5 + k, 5, 5))
        assert hd95(a, b) == pytest.approx(float(k))
        assert hd95(a, b, (2.5, 1.0, 1.0)) == pytest.approx(2.5 * k)
        assert hd95(a, b, (1.0, 3.0, 3.0)) == pytest.approx(float(k))  # in-plane spacing: no effect
    assert hd95(_cube(), _cube()) == 0.0


def test_hd95_anisotropic_diagonal_offset():
    a, b = np.zeros((8, 8, 8), bool), np.zeros((8, 8, 8), bool)
    a[1, 1, 1], b[2, 3, 1] = True, True
    assert hd95(a, b, (3.0, 0.5, 1.0)) == pytest.approx(math.hypot(3.0, 1.0))


def test_hd95_is_symmetric():
    rng = np.random.default_rng(0)
    a, b = rng.random((12, 12, 12)) > 0.7, rng.random((12, 12, 12)) > 0.6
    assert hd95(a, b, (1.0, 1.5, 2.0)) == hd95(b, a, (1.0, 1.5, 2.0))


def _hd95_uncropped(a: np.ndarray, b: np.ndarray, spacing) -> float:
    """The definition evaluated on the full volume (no bounding box), to check the crop changes nothing."""
    from scipy import ndimage

    def surface(m):
        return m & ~ndimage.binary_erosion(m, structure=ndimage.generate_binary_structure(m.ndim, 1))

    sa, sb = surface(a), surface(b)
    d_ab = ndimage.distance_transform_edt(~sb, sampling=spacing)[sa]
    d_ba = ndimage.distance_transform_edt(~sa, sampling=spacing)[sb]
    return float(np.percentile(np.concatenate([d_ab, d_ba]), 95))


@pytest.mark.parametrize("where", ["inside", "array_edge", "corner"])
def test_crop_to_joint_box_does_not_change_hd95(where):
    # Masks filling their bounding box and touching the array edge: voxels on the crop boundary
    # must be surface voxels exactly as in the full volume.
    shape = (16, 18, 20)
    a = np.zeros(shape, bool)
    b = np.zeros(shape, bool)
    if where == "inside":
        a[4:10, 5:12, 6:9], b[6:12, 3:9, 6:14] = True, True
    elif where == "array_edge":
        a[0:6, 5:12, 6:20], b[0:8, 7:18, 10:20] = True, True
    else:
        a[0:16, 0:18, 0:20] = True  # the whole array: all of it is on the crop boundary
        b[3:9, 0:5, 15:20] = True
    spacing = (1.0, 1.3, 2.2)
    assert hd95(a, b, spacing) == pytest.approx(_hd95_uncropped(a, b, spacing), abs=1e-12)


def test_hd95_solid_block_has_inner_voxels_not_on_surface():
    # A 5x5x5 block against its own centre voxel: surface distances from the block's faces are 2
    # (face centres) up to sqrt(12) (corners); inner voxels must not count.
    a = _cube((9, 9, 9), (2, 2, 2), 5)
    b = np.zeros_like(a)
    b[4, 4, 4] = True
    assert hd95(a, b) == pytest.approx(_hd95_uncropped(a, b, (1.0, 1.0, 1.0)))
    assert hd95(a, b) <= math.sqrt(12) + 1e-9


def test_hd95_against_medpy():
    binary = pytest.importorskip("medpy.metric.binary")
    rng = np.random.default_rng(42)
    from scipy import ndimage

    for trial in range(6):
        shape = (24, 28, 20)
        a = ndimage.binary_opening(rng.random(shape) > 0.55)
        b = ndimage.binary_dilation(a, iterations=trial % 3) ^ (rng.random(shape) > 0.97)
        if trial == 5:
            a[:, :, :3] = True  # touching the array edge
        spacing = (1.0 + 0.3 * trial, 1.0, 0.7)
        assert hd95(a, b, spacing) == pytest.approx(binary.hd95(a, b, voxelspacing=spacing), abs=1e-9)
        assert dice(a, b) == pytest.approx(binary.dc(a, b))


def test_region_mapping_and_volumes():
    classes = np.zeros((4, 5, 5), np.uint8)
    classes[0, :2, :] = 1  # 10 NCR
    classes[1, :, :] = 2  # 25 ED
    classes[2, :1, :] = 3  # 5 ET
    spacing = (2.0, 1.0, 1.5)  # 3 mm^3 per voxel
    vols = class_volumes_ml(classes, spacing)
    assert vols == pytest.approx({"NCR": 0.030, "ED": 0.075, "ET": 0.015, "WT": 0.120, "TC": 0.045})

    ref = classes.copy()
    ref[ref == 3] = 1  # the reference calls the enhancing voxels necrotic
    scores = region_scores(classes, ref, spacing)
    assert scores["dice_WT"] == 1.0 and scores["dice_TC"] == 1.0
    assert scores["dice_ET"] == 0.0 and math.isinf(scores["hd95_ET"])
    assert scores["hd95_WT"] == 0.0
    assert scores["volume_WT_ml"] == pytest.approx(0.120)
    assert scores["volume_TC_ml"] == pytest.approx(0.045)
    assert scores["volume_ET_ml"] == pytest.approx(0.015)
    assert list(scores) == ["dice_WT", "hd95_WT", "volume_WT_ml", "dice_TC", "hd95_TC", "volume_TC_ml",
                            "dice_ET", "hd95_ET", "volume_ET_ml"]


def test_volume_ml_is_exact_for_1mm_voxels():
    assert volume_ml(9979, (1.0, 1.0, 1.0)) == 9.979


def test_hd95_against_medpy_on_a_real_case(data_root):
    binary = pytest.importorskip("medpy.metric.binary")
    from napari_lightseg.io import load_labels, region_mask

    folder = data_root / "other" / "TCGA-FG-6692" / "segmentations"
    ref, _, _ = load_labels(folder / "fusion_mav.nii.gz")
    seg, _, _ = load_labels(folder / "scan-20.nii.gz")
    spacing = (1.0, 1.5, 0.8)  # anisotropic, to exercise the sampling
    a, b = region_mask(seg, "WT"), region_mask(ref, "WT")
    assert hd95(a, b, spacing) == pytest.approx(binary.hd95(a, b, voxelspacing=spacing), abs=1e-9)
