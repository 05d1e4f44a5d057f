"""Orientation and exact-affine round trips: a saved mask must match its source file bit for bit."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_lightseg.io import DISPLAY_AXCODES, SEQUENCES, Geometry, StudyError, load_study, save_labels

SHAPE = (9, 8, 7)  # all different, so a wrong transpose cannot pass


def _oblique() -> np.ndarray:
    """Array axes roughly (S, R, A), rotated 12 degrees about z, anisotropic voxels, odd origin."""
    angle = np.deg2rad(12)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    permutation = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=float)  # axis0 -> z, axis1 -> x, axis2 -> y
    affine = np.eye(4)
    affine[:3, :3] = rotation @ permutation @ np.diag([1.2, 0.9, 1.1])
    affine[:3, 3] = [-31.7, 12.25, 40.1]
    return affine


AFFINES = {
    "LPS": np.array([[-1.0, 0, 0, 0], [0, -1, 0, 239], [0, 0, 1, 0], [0, 0, 0, 1]]),
    "RAS": np.array([[1.0, 0, 0, -90], [0, 1, 0, -126], [0, 0, 1, -72], [0, 0, 0, 1]]),
    "oblique": _oblique(),
}
SUFFIX = {"LPS": ".nii.gz", "RAS": ".nii", "oblique": ".nii.gz"}
HEADER_FIELDS = ("srow_x", "srow_y", "srow_z", "sform_code", "qform_code", "quatern_b", "quatern_c",
                 "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z", "pixdim", "dim", "xyzt_units")


def _image(data: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    img = nib.Nifti1Image(data, affine)
    img.set_sform(affine, code="scanner")
    img.set_qform(affine, code="aligned")
    img.header.set_xyzt_units("mm", "sec")
    return img


def _write_case(folder: Path, affine: np.ndarray, suffix: str) -> tuple[Path, np.ndarray]:
    """A study whose seg holds all BraTS 2021 values at irregular places; returns (folder, seg values)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for seq in SEQUENCES:
        nib.save(_image(rng.integers(0, 500, SHAPE).astype(np.int16), affine), str(folder / f"c_{seq}{suffix}"))
    seg = rng.choice(np.array([0, 1, 2, 4], dtype=np.uint8), size=SHAPE, p=[0.7, 0.1, 0.1, 0.1])
    nib.save(_image(seg, affine), str(folder / f"c_seg{suffix}"))
    return folder, seg


@pytest.mark.parametrize("kind", sorted(AFFINES))
def test_labels_round_trip_is_exact(tmp_path: Path, kind: str) -> None:
    folder, seg = _write_case(tmp_path / "case", AFFINES[kind], SUFFIX[kind])
    study = load_study(folder)
    assert study.convention == "brats2021"
    out = save_labels(tmp_path / f"out{SUFFIX[kind]}", study.labels, study.geometry, study.convention)
    source, saved = nib.load(str(folder / f"c_seg{SUFFIX[kind]}")), nib.load(str(out))
    np.testing.assert_array_equal(np.asarray(saved.dataobj), seg)
    np.testing.assert_array_equal(saved.affine, source.affine)
    for name in HEADER_FIELDS:
        assert saved.header[name].tobytes() == source.header[name].tobytes(), name
    assert np.array_equal(saved.header.get_sform(), source.header.get_sform())
    assert np.array_equal(saved.header.get_qform(), source.header.get_qform())


@pytest.mark.parametrize("kind", sorted(AFFINES))
def test_display_orientation(kind: str) -> None:
    """Along each display axis, world position moves the way DISPLAY_AXCODES says."""
    affine = AFFINES[kind]
    geometry = Geometry.from_image(nib.Nifti1Image(np.zeros(SHAPE, np.float32), affine))
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"), -1)
    world = ijk @ affine[:3, :3].T + affine[:3, 3]  # RAS+ mm of every voxel
    # world axis and the sign that points to the display code (nibabel world is RAS+)
    direction = {"S": (2, 1), "I": (2, -1), "A": (1, 1), "P": (1, -1), "R": (0, 1), "L": (0, -1)}
    for axis, code in enumerate(DISPLAY_AXCODES):
        world_axis, sign = direction[code]
        shown = geometry.to_display(world[..., world_axis])
        assert np.all(sign * np.diff(shown, axis=axis) > 0), (kind, code)
    # the display affine maps display indices to the same world points
    display_ijk = np.argwhere(np.ones(geometry.display_shape, bool))
    shown_world = np.stack([geometry.to_display(world[..., a]) for a in range(3)], -1).reshape(-1, 3)
    mapped = display_ijk @ geometry.display_affine[:3, :3].T + geometry.display_affine[:3, 3]
    np.testing.assert_allclose(mapped, shown_world, atol=1e-9)


@pytest.mark.parametrize("kind", ["LPS", "RAS"])
def test_marker_lands_on_its_anatomical_side(kind: str) -> None:
    """A voxel at the superior-anterior-left corner shows at the last slice, top row, last column."""
    affine = AFFINES[kind]
    data = np.zeros(SHAPE, np.uint8)
    left = SHAPE[0] - 1 if affine[0, 0] < 0 else 0  # world x is +right
    anterior = SHAPE[1] - 1 if affine[1, 1] > 0 else 0  # world y is +anterior
    data[left, anterior, SHAPE[2] - 1] = 1
    geometry = Geometry.from_image(nib.Nifti1Image(data, affine))
    shown = geometry.to_display(data)
    assert shown.shape == geometry.display_shape == (SHAPE[2], SHAPE[1], SHAPE[0])
    assert tuple(np.argwhere(shown)[0]) == (SHAPE[2] - 1, 0, SHAPE[0] - 1)
    np.testing.assert_array_equal(geometry.to_disk(shown), data)


@pytest.mark.parametrize("kind", sorted(AFFINES))
def test_display_index_to_disk(kind: str) -> None:
    data = np.arange(np.prod(SHAPE)).reshape(SHAPE)
    geometry = Geometry.from_image(nib.Nifti1Image(data.astype(np.int32), AFFINES[kind]))
    shown = geometry.to_display(data)
    display_idx = np.argwhere(np.ones(shown.shape, bool))
    disk_idx = geometry.display_index_to_disk(display_idx)
    np.testing.assert_allclose(disk_idx, np.rint(disk_idx))
    disk_idx = np.rint(disk_idx).astype(int)
    np.testing.assert_array_equal(data[tuple(disk_idx.T)], shown[tuple(display_idx.T)])


def test_spacing_follows_display_axes() -> None:
    geometry = Geometry.from_image(nib.Nifti1Image(np.zeros(SHAPE, np.float32), AFFINES["oblique"]))
    # disk axis 0 (1.2 mm) runs along z = display axis 0; axis 2 (1.1 mm) along y; axis 1 (0.9 mm) along x
    np.testing.assert_allclose(geometry.spacing, (1.2, 1.1, 0.9))
    assert geometry.display_shape == (SHAPE[0], SHAPE[2], SHAPE[1])


def _two_grids(tmp_path: Path, flair: nib.Nifti1Image, t1: nib.Nifti1Image) -> Path:
    nib.save(flair, str(tmp_path / "c_flair.nii.gz"))
    nib.save(t1, str(tmp_path / "c_t1.nii.gz"))
    return tmp_path


def test_different_shape_names_both_files(tmp_path: Path) -> None:
    affine = AFFINES["LPS"]
    folder = _two_grids(tmp_path, _image(np.zeros(SHAPE, np.int16), affine), _image(np.zeros((9, 8, 6), np.int16), affine))
    with pytest.raises(StudyError) as info:
        load_study(folder)
    message = str(info.value)
    assert "c_flair.nii.gz" in message and "c_t1.nii.gz" in message and "shape" in message and "\n" not in message


def test_different_affine_names_both_files(tmp_path: Path) -> None:
    shifted = AFFINES["LPS"].copy()
    shifted[0, 3] += 2.0
    folder = _two_grids(tmp_path, _image(np.zeros(SHAPE, np.int16), AFFINES["LPS"]), _image(np.zeros(SHAPE, np.int16), shifted))
    with pytest.raises(StudyError) as info:
        load_study(folder)
    message = str(info.value)
    assert "c_flair.nii.gz" in message and "c_t1.nii.gz" in message and "affine" in message and "\n" not in message


def test_segmentation_on_another_grid(tmp_path: Path) -> None:
    folder, _ = _write_case(tmp_path, AFFINES["LPS"], ".nii.gz")
    nib.save(_image(np.zeros((9, 8, 6), np.uint8), AFFINES["LPS"]), str(folder / "c_seg.nii.gz"))
    with pytest.raises(StudyError, match="c_seg.nii.gz.*grid"):
        load_study(folder)
