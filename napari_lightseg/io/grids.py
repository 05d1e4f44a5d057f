"""World-space grids: whether two grids are one physical grid, how far apart they are, and the bridge
between a NIfTI file's ``Geometry`` (RAS) and a SimpleITK image (LPS millimetres).

Geometry, not preprocessing: ``io.study`` uses it to refuse or reorient sequences, ``preprocess.registration``
to align them. SimpleITK is imported only inside the functions that make or read an image, so that
``lightseg`` starts without it (``tests/test_imports.py``).
"""
from __future__ import annotations

from itertools import permutations, product
from typing import TYPE_CHECKING, Any, TypeAlias

import nibabel as nib
import numpy as np
from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

from .naming import StudyError
from .nifti import DISPLAY_AXCODES, Geometry

if TYPE_CHECKING:
    import SimpleITK as sitk

GRID_TOLERANCE_MM = 1e-3
LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])  # its own inverse
GridLike: TypeAlias = "Geometry | sitk.Image"


def _grid(item: GridLike) -> tuple[np.ndarray, tuple[int, int, int]]:
    """(4x4 voxel index -> LPS mm affine, size) of a Geometry (array order) or a SimpleITK image (x, y, z)."""
    if isinstance(item, Geometry):
        return LPS_FROM_RAS @ item.affine, tuple(int(v) for v in item.disk_shape)  # type: ignore[return-value]
    # anything else is read like a SimpleITK image (duck typed: SimpleITK is imported only when an image exists)
    direction = np.asarray(item.GetDirection(), dtype=np.float64).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = direction @ np.diag(item.GetSpacing())
    affine[:3, 3] = item.GetOrigin()
    return affine, tuple(int(v) for v in item.GetSize())  # type: ignore[return-value]


def _corners(size: tuple[int, ...], edges: bool = False) -> np.ndarray:
    """Homogeneous voxel indices (4 x 8) of the 8 corner voxel centres (or field-of-view corners)."""
    lo, hi = (-0.5, 0.5) if edges else (0.0, 0.0)
    pts = np.array([[lo if c == 0 else n - 1 + hi for c, n in zip(combo, size)] for combo in product((0, 1), repeat=3)])
    return np.c_[pts, np.ones(8)].T


def grid_index_map(a: GridLike, b: GridLike, tolerance_mm: float = GRID_TOLERANCE_MM) -> np.ndarray | None:
    """The exact index map of grid ``b`` onto grid ``a`` (4x4 signed permutation + offset: b index -> a index)
    when their voxel centres coincide up to a permutation/flip of axes; else None."""
    affine_a, size_a = _grid(a)
    affine_b, size_b = _grid(b)
    try:
        mapping = np.linalg.solve(affine_a, affine_b)
    except np.linalg.LinAlgError:
        return None
    rounded = np.round(mapping)
    linear = rounded[:3, :3]
    if not (np.all(np.abs(linear).sum(0) == 1) and np.all(np.abs(linear).sum(1) == 1)):
        return None
    for j in range(3):
        i = int(np.flatnonzero(linear[:, j])[0])
        if size_a[i] != size_b[j]:
            return None
        if rounded[i, 3] != (0 if linear[i, j] > 0 else size_a[i] - 1):
            return None
    corners = _corners(size_b)
    if np.abs(affine_a @ rounded @ corners - affine_b @ corners).max() > tolerance_mm:
        return None
    return rounded


def same_physical_grid(a: GridLike, b: GridLike, tolerance_mm: float = GRID_TOLERANCE_MM) -> bool:
    """True when both grids have the same voxel centres (within ``tolerance_mm``), whatever the voxel order."""
    return grid_index_map(a, b, tolerance_mm) is not None


def grid_difference(a: GridLike, b: GridLike) -> dict[str, Any]:
    """How far apart two grids are: voxel sizes, shapes, the largest displacement between corresponding
    field-of-view corners (mm; axes matched up to permutation/flip) and the rotation between the frames (degrees)."""
    affine_a, size_a = _grid(a)
    affine_b, size_b = _grid(b)
    rot_a = affine_a[:3, :3] / np.linalg.norm(affine_a[:3, :3], axis=0)
    rot_b = affine_b[:3, :3] / np.linalg.norm(affine_b[:3, :3], axis=0)
    best: tuple[float, float] | None = None
    corners_a = (affine_a @ _corners(size_a, edges=True))[:3].T
    for perm in permutations(range(3)):
        for signs in product((1, -1), repeat=3):
            # b's axis perm[k] (with sign) plays the role of a's axis k
            candidate = rot_b[:, perm] * np.array(signs)
            cos = np.clip((np.trace(rot_a.T @ candidate) - 1) / 2, -1, 1)
            angle = float(np.degrees(np.arccos(cos)))
            # corners of b's field of view, listed in the same order as a's
            combos = np.array(list(product((0, 1), repeat=3)))
            pts = []
            for combo in combos:
                index = np.empty(3)
                for k in range(3):
                    n = size_b[perm[k]]
                    low_end = combo[k] == 0 if signs[k] > 0 else combo[k] == 1
                    index[perm[k]] = -0.5 if low_end else n - 0.5
                pts.append((affine_b @ np.r_[index, 1.0])[:3])
            shift = float(np.linalg.norm(np.array(pts) - corners_a, axis=1).max())
            if best is None or (angle, shift) < best:
                best = (angle, shift)
    assert best is not None
    return {
        "rotation_deg": best[0], "corner_shift_mm": best[1],
        "spacing_a_mm": tuple(float(v) for v in np.linalg.norm(affine_a[:3, :3], axis=0)),
        "spacing_b_mm": tuple(float(v) for v in np.linalg.norm(affine_b[:3, :3], axis=0)),
        "size_a": size_a, "size_b": size_b,
    }


def describe_grid_difference(a: GridLike, b: GridLike) -> str:
    """One phrase for messages, e.g. ``shape 240x240x155 vs 256x256x30, voxels 1x1x1 vs 0.9x0.9x5 mm,
    affine: field-of-view corners up to 12.3 mm apart, rotated 3.0 degrees``."""
    d = grid_difference(a, b)
    parts = []
    if sorted(d["size_a"]) != sorted(d["size_b"]):
        parts.append("shape " + "x".join(map(str, d["size_a"])) + " vs " + "x".join(map(str, d["size_b"])))
    if not np.allclose(sorted(d["spacing_a_mm"]), sorted(d["spacing_b_mm"]), atol=GRID_TOLERANCE_MM):
        parts.append("voxels " + "x".join(f"{v:.3g}" for v in d["spacing_a_mm"]) + " vs "
                     + "x".join(f"{v:.3g}" for v in d["spacing_b_mm"]) + " mm")
    parts.append(f"affine: field-of-view corners up to {d['corner_shift_mm']:.3g} mm apart, "
                 f"rotated {d['rotation_deg']:.3g} degrees")
    return ", ".join(parts)


def geometry_from_sitk(image: sitk.Image) -> Geometry:
    """A nibabel-style ``Geometry`` for a SimpleITK image: RAS affine (= LPS flipped), a proper NIfTI-1
    header (sform and qform, scanner code, mm), array order = SimpleITK index order (x, y, z)."""
    affine_lps, size = _grid(image)
    affine = LPS_FROM_RAS @ affine_lps
    header = nib.Nifti1Header()
    header.set_data_shape(size)
    header.set_data_dtype(np.float32)
    header.set_zooms(tuple(float(v) for v in image.GetSpacing()))
    header.set_sform(affine, code="scanner")
    header.set_qform(affine, code="scanner")
    header.set_xyzt_units("mm", "sec")
    ornt = ornt_transform(io_orientation(affine), axcodes2ornt(DISPLAY_AXCODES))
    return Geometry(affine, header, size, ornt)


def sitk_from_array(data: np.ndarray, geometry: Geometry) -> sitk.Image:
    """A SimpleITK image of an array in a NIfTI file's own order (x, y, z) with that file's grid; same index order."""
    import SimpleITK as sitk

    affine_lps = LPS_FROM_RAS @ geometry.affine
    spacing = np.linalg.norm(affine_lps[:3, :3], axis=0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(data).transpose(2, 1, 0)))
    image.SetSpacing(tuple(float(v) for v in spacing))
    image.SetOrigin(tuple(float(v) for v in affine_lps[:3, 3]))
    try:
        image.SetDirection(tuple(float(v) for v in (affine_lps[:3, :3] / spacing).ravel()))
    except RuntimeError:
        raise StudyError(f"affine {np.round(geometry.affine, 4).tolist()} is not a rotation with voxel sizes "
                         "(sheared); SimpleITK cannot use it") from None
    return image


def array_in_geometry(image: sitk.Image) -> np.ndarray:
    """Voxels of a SimpleITK image in its index order (x, y, z): the array order of ``geometry_from_sitk``."""
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(image).transpose(2, 1, 0)
