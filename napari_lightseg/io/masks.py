"""Saving a tumour mask as NIfTI: internal classes back into the source file's grid, voxel order and affine,
in a label convention, with the label sidecar beside it. ``Segmentation`` is the result mask as one noun
(labels + grid + convention + model), so savers take one value instead of four loose arguments.

Why in ``io``: the CLI, the cohort runner, the correction widget and napari's writer hook all save masks;
they import this from the I/O layer, not from the npe2 hook module (``_writer``).
Never silently overwrites: with ``keep_existing`` an existing file is kept as ``<name>.bak<N>.nii.gz`` and a
warning says so. Never writes onto an input (``io.outputs``).
"""
from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .labels import DEFAULT_CONVENTION, from_internal, label_sidecar, sidecar_path
from .naming import StudyError, strip_nifti_suffix
from .nifti import Geometry, save_nifti_like
from .outputs import OutputPlan


@dataclass(frozen=True, eq=False)
class Segmentation:
    """A label volume of internal classes (0 bg, 1 NCR, 2 ED, 3 ET) in display orientation, with the grid it
    lies on, the label convention of the study it came from (None: unknown) and the model that made it.

    Lives in ``io`` (re-exported by ``types``) so the mask writers below can take it.
    """

    labels: np.ndarray
    geometry: Geometry
    convention: str | None = None
    model: str = ""

    def __post_init__(self) -> None:
        if tuple(np.shape(self.labels)) != tuple(self.geometry.display_shape):
            # StudyError (a ValueError): the widgets' save paths report it like save_labels' own refusal
            raise StudyError(f"labels of shape {np.shape(self.labels)} do not lie on a grid of {self.geometry.display_shape}")


def save_segmentation(path: str | Path, segmentation: Segmentation, convention: str | None = None, *,
                      keep_existing: bool = False, overwrite: bool = False, plan: OutputPlan | None = None,
                      inputs: Iterable[str | Path | None] = ()) -> Path:
    """Save a result mask on its own grid, in ``convention``, else the segmentation's, else the default.

    An explicit convention wins (the user chose it); otherwise the study's own is kept. See ``save_labels``.
    """
    return save_labels(path, segmentation.labels, segmentation.geometry,
                       convention or segmentation.convention or DEFAULT_CONVENTION,
                       keep_existing=keep_existing, overwrite=overwrite, plan=plan, inputs=inputs)


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
    array = np.asarray(classes)
    if array.size and (array.min() < 0 or array.max() > 3):  # min/max: no sort of 9 M voxels unless refused
        values = np.unique(array)
        raise StudyError(f"{path}: mask holds label values {values.tolist()}; only 0-3 (background, NCR, ED, ET) can be saved")
    disk = geometry.to_disk(from_internal(classes, convention), "F")
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
