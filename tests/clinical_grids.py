"""Perturbation generator: a co-registered 1 mm study made to look like a clinical one.

Each sequence is resampled onto its own clinical-like grid (thick axial slices, a tilted and shifted
field of view, another matrix size) and, optionally, its content is moved by a rigid "patient motion"
that registration must undo. Used by tests/test_registration.py and benchmarks/bench_registration.py.

Conventions (SimpleITK, LPS mm): ``motion`` maps a point of the original (reference) frame to where that
anatomy lies in the perturbed sequence, i.e. the transform ``register_rigid`` should recover.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from napari_lightseg.io import Geometry, load_nifti
from napari_lightseg.io.grids import sitk_from_array
from napari_lightseg.io.series import SeriesVolume


@dataclass(frozen=True)
class ClinicalGrid:
    """A grid relative to the source image: voxel size, tilt (degrees about x, y, z), shift (mm), size factor."""

    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    tilt_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    size: tuple[int, int, int] | None = None  # None: cover the source's field of view


# the clinical-like grids of the issue; the reference (t1ce) keeps a near-isotropic 3D grid
GRIDS = {
    "flair": ClinicalGrid(spacing=(0.9, 0.9, 5.0)),  # 2D axial FLAIR, thick slices
    "t1": ClinicalGrid(spacing=(1.0, 1.0, 1.0), tilt_deg=(0.0, 0.0, 3.0), shift_mm=(4.0, 0.0, 0.0)),
    "t1ce": ClinicalGrid(spacing=(1.0, 1.0, 1.0)),
    "t2": ClinicalGrid(spacing=(0.7, 0.7, 3.0), size=(300, 300, 56)),  # another matrix size
}

# simulated patient motion between sequences: rotation degrees (about x, y, z), translation mm
MOTIONS = {
    "flair": ((2.0, -3.0, 4.0), (5.0, -4.0, 3.0)),
    "t1": ((-4.0, 2.0, -3.0), (-6.0, 3.0, -2.0)),
    "t2": ((3.0, 3.0, 2.0), (2.0, 6.0, -5.0)),
}


def read_sitk(path: str | Path) -> sitk.Image:
    """A NIfTI file as a SimpleITK float32 image (through the plugin's reader: same index order)."""
    data, img = load_nifti(path)
    return sitk_from_array(data, Geometry.from_image(img))


def perturbed_volumes(sequences: dict[str, Path], grids: dict[str, ClinicalGrid] | None = None,
                      motions: dict | None = None) -> tuple[dict[str, SeriesVolume], dict[str, sitk.Transform]]:
    """Every sequence on its clinical grid, moved by its motion (relative to the T1ce reference's centre)."""
    grids = GRIDS if grids is None else grids
    motions = MOTIONS if motions is None else motions
    images = {seq: read_sitk(path) for seq, path in sequences.items()}
    centre = center_of(images["t1ce"])
    volumes, truths = {}, {}
    for seq, image in images.items():
        motion = euler(*motions[seq], centre) if seq in motions else None
        volumes[seq] = SeriesVolume(perturb(image, grids[seq], motion), str(sequences[seq]), sequence=seq)
        truths[seq] = motion if motion is not None else sitk.Euler3DTransform()
    return volumes, truths


def euler(rotation_deg: tuple[float, float, float], translation_mm: tuple[float, float, float],
          center: tuple[float, float, float]) -> sitk.Euler3DTransform:
    transform = sitk.Euler3DTransform()
    transform.SetCenter(center)
    transform.SetRotation(*np.deg2rad(rotation_deg))
    transform.SetTranslation(translation_mm)
    return transform


def center_of(image: sitk.Image) -> tuple[float, float, float]:
    size = np.array(image.GetSize(), dtype=float)
    return image.TransformContinuousIndexToPhysicalPoint(tuple((size - 1) / 2))


def clinical_reference(image: sitk.Image, grid: ClinicalGrid) -> sitk.Image:
    """An empty image on ``grid``: centred on the source's centre (+ shift), tilted, with its own spacing/size."""
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    rotation = np.asarray(euler(grid.tilt_deg, (0, 0, 0), (0, 0, 0)).GetMatrix()).reshape(3, 3)
    new_direction = rotation @ direction
    extent = np.array(image.GetSize()) * np.array(image.GetSpacing())
    size = np.array(grid.size) if grid.size is not None else np.ceil(extent / np.array(grid.spacing)).astype(int)
    centre = np.array(center_of(image)) + np.array(grid.shift_mm)
    origin = centre - new_direction @ ((size - 1) / 2 * np.array(grid.spacing))
    out = sitk.Image([int(v) for v in size], sitk.sitkFloat32)
    out.SetSpacing(grid.spacing)
    out.SetDirection(tuple(new_direction.ravel()))
    out.SetOrigin(tuple(origin))
    return out


def perturb(image: sitk.Image, grid: ClinicalGrid, motion: sitk.Transform | None = None,
            interpolator: int = sitk.sitkLinear) -> sitk.Image:
    """``image`` on ``grid`` with its content moved by ``motion`` (anatomy at p appears at motion(p))."""
    target = clinical_reference(image, grid)
    inverse = motion.GetInverse() if motion is not None else sitk.Transform()
    pixel = sitk.sitkUInt8 if interpolator == sitk.sitkNearestNeighbor else sitk.sitkFloat32
    return sitk.Resample(sitk.Cast(image, pixel), target, inverse, interpolator, 0.0, pixel)


def landmarks(image: sitk.Image) -> np.ndarray:
    """Physical points (N x 3) at the corners and centre of the non-zero (brain) bounding box."""
    array = sitk.GetArrayViewFromImage(image)  # z, y, x
    nz = np.nonzero(array)
    lo = np.array([nz[2].min(), nz[1].min(), nz[0].min()], float)
    hi = np.array([nz[2].max(), nz[1].max(), nz[0].max()], float)
    points = [np.where(np.array(combo, bool), hi, lo) for combo in np.ndindex(2, 2, 2)] + [(lo + hi) / 2]
    return np.array([image.TransformContinuousIndexToPhysicalPoint(tuple(p)) for p in points])


def target_registration_error(estimated: sitk.Transform, truth: sitk.Transform, points: np.ndarray) -> np.ndarray:
    """Distance (mm) between where each point maps under the estimated and the true transform."""
    return np.array([np.linalg.norm(np.subtract(estimated.TransformPoint(tuple(p)), truth.TransformPoint(tuple(p))))
                     for p in points])
