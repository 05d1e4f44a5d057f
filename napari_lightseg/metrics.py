"""Segmentation metrics on BraTS regions: Dice, HD95 (mm, MedPy's definition), volumes (mL)."""
from __future__ import annotations

import numpy as np

from .arrays import bounding_box
from .io.labels import CLASS_NAMES, REGIONS, region_mask


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks; both empty gives 1.0 (nothing to find, nothing found: BraTS's rule)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"dice: masks differ in shape {a.shape} vs {b.shape}")
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def _surface(mask: np.ndarray) -> np.ndarray:
    """Mask minus its face-connected erosion; outside the array counts as background (as in MedPy)."""
    from scipy import ndimage  # here, not at the top: the engine imports this module, and scipy.ndimage costs ~0.3 s

    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, iterations=1, border_value=0)


def hd95(a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...] | None = None) -> float:
    """95th percentile of the pooled surface distances (both directions), in mm, as MedPy's ``hd95``.

    Surface = mask minus its face-connected erosion; empty vs empty = 0, one empty = inf.
    ``spacing`` defaults to 1 mm along every axis.
    """
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"hd95: masks differ in shape {a.shape} vs {b.shape}")
    spacing = (1.0,) * a.ndim if spacing is None else tuple(float(s) for s in spacing)
    if len(spacing) != a.ndim:
        raise ValueError(f"hd95: {len(spacing)} spacing values for {a.ndim}D masks")
    if not a.any() and not b.any():
        return 0.0
    if not a.any() or not b.any():
        return float("inf")
    # Restrict to the joint bounding box (plus a margin) for speed. Results are unchanged: every
    # voxel just outside the box is background, which is what border_value=0 assumes, and the
    # Euclidean distance transform is exact within the box since all surface voxels lie in it.
    from scipy import ndimage

    box = bounding_box(a | b, margin=1)
    a, b = a[box], b[box]
    sa, sb = _surface(a), _surface(b)
    dist_to_b = ndimage.distance_transform_edt(~sb, sampling=spacing)
    dist_to_a = ndimage.distance_transform_edt(~sa, sampling=spacing)
    return float(np.percentile(np.concatenate([dist_to_b[sa], dist_to_a[sb]]), 95))


def voxel_ml(spacing: tuple[float, ...]) -> float:
    """Volume of one voxel in mL (1 mL = 1000 mm^3)."""
    return float(np.prod(spacing)) / 1000.0


def volume_ml(voxels: int, spacing: tuple[float, ...]) -> float:
    """Volume in mL of a voxel count; multiplies before dividing so 1 mm voxels give exact mL (9979 -> 9.979)."""
    return float(voxels) * float(np.prod(spacing)) / 1000.0


def class_volumes_ml(classes: np.ndarray, spacing: tuple[float, ...]) -> dict[str, float]:
    """Volumes in mL of NCR, ED, ET and the regions WT, TC."""
    classes = np.asarray(classes)
    if classes.dtype.kind in "ub":  # one comparison per class: no int64 copy of the volume for bincount
        counts = {v: int(np.count_nonzero(classes == v)) for v in CLASS_NAMES}
    else:
        counts = dict(enumerate(int(n) for n in np.bincount(classes.astype(np.intp).ravel(), minlength=len(CLASS_NAMES) + 1)))
    out = {name: volume_ml(counts[v], spacing) for v, name in CLASS_NAMES.items()}
    for region in ("WT", "TC"):
        out[region] = volume_ml(sum(counts[v] for v in REGIONS[region]), spacing)
    return out


def region_scores(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...] = (1.0, 1.0, 1.0),
                  with_hd95: bool = True) -> dict[str, float]:
    """Dice (and HD95) per BraTS region, and region volumes of the prediction, from internal classes."""
    out: dict[str, float] = {}
    for region in REGIONS:
        p, r = region_mask(pred, region), region_mask(ref, region)
        out[f"dice_{region}"] = dice(p, r)
        if with_hd95:
            out[f"hd95_{region}"] = hd95(p, r, spacing)
        out[f"volume_{region}_ml"] = volume_ml(int(p.sum()), spacing)
    return out
