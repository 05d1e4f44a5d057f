"""Post-processing of label volumes and tumour components (internal classes 0 bg, 1 NCR, 2 ED, 3 ET).

Why a module of its own: the engine cleans every result with these operations and the manual-correction
tools offer the same ones, so both import them from here (the engine never imports ``correction``).
All functions are pure: they return new arrays or values and leave their input alone.
"""
from __future__ import annotations

import numpy as np

from .arrays import bounding_box, label
from .io.labels import CLASS_NAMES
from .metrics import voxel_ml
from .types import Box, Detection

MIN_COMPONENT_ML = 0.1  # the engine's default: isolated false positives are smaller, real lesions larger
FACES = 1  # scipy's connectivity rank (``arrays.label``): face neighbours only (6 in 3D)
FULL = 3  # faces, edges and corners (26 in 3D)


def components(mask: np.ndarray, connectivity: int = FULL) -> tuple[np.ndarray, np.ndarray]:
    """Component ids (0 = outside; ``scipy.ndimage.label``'s numbering) and the voxel count of each id."""
    ids, count = label(mask, connectivity)
    return ids, np.bincount(ids.ravel(), minlength=count + 1)


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
    if not labels.any():
        return []
    box = bounding_box(labels > 0, margin=1)
    ids, _ = label(labels[box] > 0, FULL)
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
    """One detection per component id of ``ids`` (a labelled crop starting at ``offset``), largest first
    (ties in id order); ids absent from ``ids`` are skipped.

    The same detections as ``scipy.ndimage.find_objects`` + ``center_of_mass`` per id gave: cc3d's boxes, and
    centres as exact integer coordinate sums divided by the voxel count (scipy's sums of integer-valued
    floats are exact too, so both are the correctly rounded quotient)."""
    import cc3d

    if not ids.any():
        return []
    stats = cc3d.statistics(np.ascontiguousarray(ids))
    found = []
    for index in range(1, len(stats["voxel_counts"])):
        voxels = int(stats["voxel_counts"][index])
        if voxels == 0:
            continue
        sub = stats["bounding_boxes"][index]
        mask = ids[sub] == index
        start = offset + [s.start for s in sub]
        centre = np.array([_coordinate_sum(mask, axis) / voxels for axis in range(mask.ndim)])
        cz, cy, cx = (float(c) for c in centre + start)
        stop = offset + [s.stop - 1 for s in sub]
        found.append(Detection(Box.of(start, stop), (cz, cy, cx), float(voxels) * voxel_ml(spacing),
                               source="components"))
    return sorted(found, key=lambda d: -(d.volume_ml or 0.0))


def _coordinate_sum(mask: np.ndarray, axis: int) -> int:
    """Sum over the mask's voxels of their index along ``axis`` (an exact integer)."""
    per_index = np.count_nonzero(mask, axis=tuple(a for a in range(mask.ndim) if a != axis))
    return int(np.dot(per_index.astype(np.int64), np.arange(mask.shape[axis], dtype=np.int64)))
