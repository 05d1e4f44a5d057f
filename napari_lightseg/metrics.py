"""Segmentation metrics on BraTS regions: Dice, HD95 (mm, MedPy's definition), volumes (mL)."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .io.labels import CLASS_NAMES, REGIONS, region_mask

_SIX_CONNECTED = ndimage.generate_binary_structure(3, 1)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks; both empty gives 1.0 (nothing to find, nothing found)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=_SIX_CONNECTED, border_value=0)


def hd95(a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...] = (1.0, 1.0, 1.0)) -> float:
    """95th percentile of the pooled surface distances (both directions), in mm.

    Surface = mask minus its 6-connected erosion; empty vs empty = 0, one empty = inf.
    """
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if not a.any() and not b.any():
        return 0.0
    if not a.any() or not b.any():
        return float("inf")
    # restrict to the joint bounding box (plus a margin) for speed; distances are unchanged
    box = _joint_box(a | b, margin=1)
    a, b = a[box], b[box]
    sa, sb = _surface(a), _surface(b)
    dist_to_b = ndimage.distance_transform_edt(~sb, sampling=spacing)
    dist_to_a = ndimage.distance_transform_edt(~sa, sampling=spacing)
    return float(np.percentile(np.concatenate([dist_to_b[sa], dist_to_a[sb]]), 95))


def _joint_box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    box = []
    for axis in range(mask.ndim):
        other = tuple(i for i in range(mask.ndim) if i != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        box.append(slice(max(int(idx[0]) - margin, 0), int(idx[-1]) + 1 + margin))
    return tuple(box)


def voxel_ml(spacing: tuple[float, ...]) -> float:
    return float(np.prod(spacing)) / 1000.0


def class_volumes_ml(classes: np.ndarray, spacing: tuple[float, ...]) -> dict[str, float]:
    """Volumes in mL of NCR, ED, ET and the regions WT, TC."""
    counts = np.bincount(np.asarray(classes, dtype=np.intp).ravel(), minlength=4)
    unit = voxel_ml(spacing)
    out = {name: float(counts[v]) * unit for v, name in CLASS_NAMES.items()}
    out["WT"] = float(counts[1:4].sum()) * unit
    out["TC"] = float(counts[1] + counts[3]) * unit
    return out


def region_scores(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...] = (1.0, 1.0, 1.0), with_hd95: bool = True) -> dict[str, float]:
    """Dice (and HD95) per BraTS region, and region volumes of the prediction, from internal classes."""
    out: dict[str, float] = {}
    unit = voxel_ml(spacing)
    for region in REGIONS:
        p, r = region_mask(pred, region), region_mask(ref, region)
        out[f"dice_{region}"] = dice(p, r)
        if with_hd95:
            out[f"hd95_{region}"] = hd95(p, r, spacing)
        out[f"volume_{region}_ml"] = float(p.sum()) * unit
    return out
