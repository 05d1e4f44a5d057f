"""npe2 labels writer: a tumour mask back into its source file's grid, voxel order and affine.

Never silently overwrites: an existing file is kept as ``<name>.bak<N>.nii.gz`` and a warning says so
(napari's Save dialog has already asked). Never writes onto an input: the layer's own source file and
the source files of the viewer's other layers are refused (``io.outputs``).
"""
from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .io import DEFAULT_CONVENTION, Geometry, StudyError, from_internal, save_nifti_like
from .io.labels import label_sidecar, sidecar_path
from .io.naming import strip_nifti_suffix
from .io.outputs import OutputPlan, source_file
from .layers import geometry_for_shape, lightseg_metadata


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    info = lightseg_metadata(meta.get("metadata") or {})
    geometry = info.get("geometry") or _geometry_from_viewer(np.shape(data))
    convention = info.get("convention") or DEFAULT_CONVENTION
    inputs = [source_file(info.get("source")), *viewer_source_files()]
    return [str(save_labels(path, np.asarray(data), geometry, convention, keep_existing=True, inputs=inputs))]


def save_labels(path: str | Path, classes: np.ndarray, geometry: Geometry, convention: str = DEFAULT_CONVENTION,
                *, keep_existing: bool = False, overwrite: bool = False, plan: OutputPlan | None = None,
                inputs: Iterable[str | Path | None] = ()) -> Path:
    """Save internal classes (display order) as ``convention`` values in the source grid.

    ``inputs`` are never written (nor backed up); with ``plan`` the mask joins the caller's outputs.
    """
    path = Path(path)
    if not str(path).lower().endswith((".nii", ".nii.gz")):
        path = path.with_name(path.name + ".nii.gz")
    if tuple(classes.shape) != geometry.display_shape:
        raise StudyError(f"{path}: mask shape {classes.shape} does not match the study grid {geometry.display_shape}")
    values = np.unique(classes)
    if values.size and (values.min() < 0 or values.max() > 3):
        raise StudyError(f"{path}: mask holds label values {values.tolist()}; only 0-3 (background, NCR, ED, ET) can be saved")
    disk = geometry.to_disk(from_internal(classes, convention))
    if plan is not None:
        save_nifti_like(path, disk, geometry, plan=plan)
        _write_sidecar(plan, path, convention)
        return path
    keep = keep_existing and os.path.lexists(path)
    with OutputPlan(inputs, overwrite=overwrite or keep) as own:
        save_nifti_like(path, disk, geometry, plan=own)  # validated (never an input) and written before the backup
        _write_sidecar(own, path, convention)
        if keep:
            backup = _backup_name(path)
            os.rename(path, backup)
            warnings.warn(f"{path} existed; the previous file was kept as {backup.name}", stacklevel=2)
        own.commit()
    return path


def _write_sidecar(plan: OutputPlan, mask: Path, convention: str) -> None:
    """What the mask's values mean, beside it (ITK-SNAP, Slicer and this reader need not guess)."""
    content = json.dumps(label_sidecar(convention), indent=1) + "\n"
    plan.write(sidecar_path(mask), lambda temp: temp.write_text(content), "label sidecar")


def _backup_name(path: Path) -> Path:
    ext = ".nii.gz" if path.name.lower().endswith(".nii.gz") else ".nii"
    stem = strip_nifti_suffix(path.name)
    n = 1
    while (candidate := path.with_name(f"{stem}.bak{n}{ext}")).exists():
        n += 1
    return candidate


def viewer_source_files() -> list[str]:
    """Source files of the layers open in napari: all inputs the writer must never replace."""
    try:
        import napari

        viewer = napari.current_viewer()
    except Exception:  # no napari viewer: nothing else to protect
        return []
    sources = [source_file(lightseg_metadata(layer.metadata).get("source")) for layer in viewer.layers] if viewer else []
    return [s for s in sources if s]


def _geometry_from_viewer(shape: tuple[int, ...]) -> Geometry:
    """A labels layer drawn by hand has no metadata: borrow the grid of a study layer of its shape."""
    try:
        import napari

        viewer = napari.current_viewer()
    except Exception:  # no napari viewer: nothing to borrow from
        viewer = None
    geometry = geometry_for_shape(viewer.layers, shape) if viewer is not None else None
    if geometry is not None:
        return geometry
    raise StudyError(f"labels of shape {tuple(shape)} have no source grid: open the study with napari-lightseg first")
