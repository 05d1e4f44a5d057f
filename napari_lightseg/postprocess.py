"""Post-processing of label volumes and tumour components (internal classes 0 bg, 1 NCR, 2 ED, 3 ET).

Why a module of its own: the engine cleans every result with these operations and the manual-correction
tools offer the same ones, so both import them from here (the engine never imports ``correction``).
All functions are pure: they return new arrays or values and leave their input alone.
"""
from __future__ import annotations

import numpy as np

from .arrays import bounding_box
from .io.labels import CLASS_NAMES
from .metrics import voxel_ml
from .types import Box, Detection

MIN_COMPONENT_ML = 0.1  # the engine's default: isolated false positives are smaller, real lesions larger
FACES = 1  # scipy's connectivity rank: face neighbours only (6 in 3D)
FULL = 3  # faces, edges and corners (26 in 3D)


def components(mask: np.ndarray, connectivity: int = FULL) -> tuple[np.ndarray, np.ndarray]:
    """Component ids (0 = outside) and the voxel count of each id."""
    from scipy import ndimage

    structure = ndimage.generate_binary_structure(mask.ndim, connectivity)
    ids, _ = ndimage.label(mask, structure=structure)
    return ids, np.bincount(ids.ravel())


def remove_small_components(labels: np.ndarray, min_ml: float, spacing: tuple[float, ...] = (1.0, 1.0, 1.0),
                            per_class: bool = True, connectivity: int = FULL) -> np.ndarray:
    """Set to background every connected component smaller than ``min_ml`` mL.

    ``per_class``: components of each class separately (a stray ET speck inside edema goes);
    otherwise components of the whole tumour (only islands apart from the tumour go).
    """
    out = np.array(labels, copy=True)
    view = out[bounding_box(out > 0)]
    min_voxels = float(min_ml) / voxel_ml(spacing)
    masks = [view == c for c in CLASS_NAMES] if per_class else [view > 0]
    for mask in masks:
        ids, sizes = components(mask, connectivity)
        small = sizes < min_voxels
        small[0] = False
        view[small[ids]] = 0
    return out


def keep_largest_component(labels: np.ndarray, connectivity: int = FULL) -> np.ndarray:
    """Keep the largest connected component of the whole tumour (all classes in it); clear the rest."""
    out = np.array(labels, copy=True)
    view = out[bounding_box(out > 0)]
    ids, sizes = components(view > 0, connectivity)
    if sizes.size <= 2:  # no tumour, or a single component
        return out
    sizes[0] = 0
    view[(ids != int(np.argmax(sizes))) & (ids > 0)] = 0
    return out


def find_components(labels: np.ndarray, spacing: tuple[float, ...]) -> list[Detection]:
    """One detection per 26-connected tumour component, largest first (display voxel indices)."""
    from scipy import ndimage

    if not labels.any():
        return []
    box = bounding_box(labels > 0, margin=1)
    ids, _ = ndimage.label(labels[box] > 0, structure=np.ones((3, 3, 3)))
    return _detections(ids, np.array([s.start for s in box]), spacing)


def clean_and_find(labels: np.ndarray, min_ml: float, spacing: tuple[float, ...]) -> tuple[np.ndarray, list[Detection]]:
    """``remove_small_components(labels, min_ml, spacing, per_class=False)`` and ``find_components`` of the
    result, from one labelling of the whole tumour (the engine's post-processing): the same labels and the
    same detections, in the same order, as the two calls."""
    out = np.array(labels, copy=True)
    if not out.any():
        return out, []
    box = bounding_box(out > 0)
    view = out[box]
    ids, sizes = components(view > 0, FULL)
    small = sizes < float(min_ml) / voxel_ml(spacing)
    small[0] = False
    if small.any():
        gone = small[ids]
        view[gone] = 0
        ids[gone] = 0  # the survivors keep their ids, in the same scan order as a fresh labelling would give
    return out, _detections(ids, np.array([s.start for s in box]), spacing)


def _detections(ids: np.ndarray, offset: np.ndarray, spacing: tuple[float, ...]) -> list[Detection]:
    """One detection per component id of ``ids`` (a labelled crop starting at ``offset``), largest first;
    ids absent from ``ids`` are skipped."""
    from scipy import ndimage

    found = []
    for index, sub in enumerate(ndimage.find_objects(ids), start=1):
        if sub is None:
            continue
        mask = ids[sub] == index
        start = offset + [s.start for s in sub]
        cz, cy, cx = (float(c) for c in np.array(ndimage.center_of_mass(mask)) + start)
        stop = offset + [s.stop - 1 for s in sub]
        found.append(Detection(Box.of(start, stop), (cz, cy, cx), float(mask.sum()) * voxel_ml(spacing),
                               source="components"))
    return sorted(found, key=lambda d: -(d.volume_ml or 0.0))
