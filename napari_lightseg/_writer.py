"""npe2 labels writer: a tumour mask back into its source file's grid, voxel order and affine.

Never silently overwrites: an existing file is kept as ``<name>.bak<N>.nii.gz`` and a warning says so.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .io import DEFAULT_CONVENTION, Geometry, StudyError, from_internal, save_nifti_like
from .io.naming import strip_nifti_suffix
from .layers import lightseg_metadata


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    info = lightseg_metadata(meta.get("metadata") or {})
    geometry = info.get("geometry") or _geometry_from_viewer(np.shape(data))
    convention = info.get("convention") or DEFAULT_CONVENTION
    return [str(save_labels(path, np.asarray(data), geometry, convention, keep_existing=True))]


def save_labels(path: str | Path, classes: np.ndarray, geometry: Geometry, convention: str = DEFAULT_CONVENTION,
                *, keep_existing: bool = False, overwrite: bool = False) -> Path:
    """Save internal classes (display order) as ``convention`` values in the source grid."""
    path = Path(path)
    if not str(path).lower().endswith((".nii", ".nii.gz")):
        path = path.with_name(path.name + ".nii.gz")
    if tuple(classes.shape) != geometry.display_shape:
        raise StudyError(f"{path}: mask shape {classes.shape} does not match the study grid {geometry.display_shape}")
    values = np.unique(classes)
    if values.size and (values.min() < 0 or values.max() > 3):
        raise StudyError(f"{path}: mask holds label values {values.tolist()}; only 0-3 (background, NCR, ED, ET) can be saved")
    if path.exists() and keep_existing:
        backup = _backup_name(path)
        path.rename(backup)
        warnings.warn(f"{path} existed; the previous file was kept as {backup.name}", stacklevel=2)
    disk = geometry.to_disk(from_internal(classes, convention))
    return save_nifti_like(path, disk, geometry, overwrite=overwrite)


def _backup_name(path: Path) -> Path:
    ext = ".nii.gz" if path.name.lower().endswith(".nii.gz") else ".nii"
    stem = strip_nifti_suffix(path.name)
    n = 1
    while (candidate := path.with_name(f"{stem}.bak{n}{ext}")).exists():
        n += 1
    return candidate


def _geometry_from_viewer(shape: tuple[int, ...]) -> Geometry:
    """A labels layer drawn by hand has no metadata: borrow the grid of a study layer of its shape."""
    try:
        import napari

        viewer = napari.current_viewer()
    except Exception:  # no napari viewer: nothing to borrow from
        viewer = None
    for layer in viewer.layers if viewer is not None else []:
        geometry = lightseg_metadata(layer.metadata).get("geometry")
        if geometry is not None and geometry.display_shape == tuple(shape):
            return geometry
    raise StudyError(f"labels of shape {tuple(shape)} have no source grid: open the study with napari-lightseg first")
