"""Unsupervised whole-tumour (and enhancing-tumour) segmentation with a simplified PCNN.

``pcnn-wt`` marks the whole tumour as one class: WT voxels get internal class 2 (ED), and, when
``enhancing`` is on, enhancing voxels inside it class 3 (ET). Method, per volume:

1. brain = voxels where any sequence is non-zero; everything runs on the brain's bounding box.
2. stimulus = hyperintensity relative to the brain: a weighted mean of robust z-scores
   ((x - median) / IQR over the brain) of FLAIR and T2, clipped to [0, ``z_max``] and scaled
   to [0, 1]. Tissue at or below the brain median gets S = 0 and never fires, so the network
   only orders the bright tail, where oedema and tumour live.
3. SPCNN with Chen et al. (2011) automatic parameters over the stimulated voxels. After the
   synchronising pulse at n = 1, the first wave of firing (read from the signature: the first
   n >= 2 with G[n] > 0) is the brightest cluster, i.e. the voxels above the Otsu level S',
   pulled in by linking when their neighbours fire. That wave is the tumour candidate.
4. cleanup: 3D opening cuts thin bridges to normal bright tissue; components lying mostly in
   the brain's outer rim (FLAIR-bright cortex/CSF edges, skull-strip residue) or smaller than
   ``min_component_ml`` are implausible; the largest plausible component is kept, with any
   other one at least ``keep_fraction`` of its size (multifocal tumours); holes are filled
   slice by slice (a dark necrotic core is tumour too).
5. ET (optional): the same first-wave rule on the T1ce hyperintensity inside the WT.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from ..arrays import bounding_box
from ..preprocess import brain_mask as volume_brain_mask
from ..progress import CancelCallback, ProgressCallback, check_cancel, report
from .core import SPCNNParameters, run_spcnn

DEFAULT_PARAMETERS: dict[str, Any] = {
    "sequences": ["flair", "t2"],
    "weights": [2.0, 1.0],
    "z_max": 6.0,
    "opening_radius": 1,
    "slice_window": 0,  # >0: per-slice brain median smoothed over this many slices (drift correction; see README)
    "rim_mm": 4.0,
    "rim_fraction": 0.5,
    "min_component_ml": 1.0,
    "keep_fraction": 0.3,
    "symmetry": True,  # rank components by left-right asymmetric brightness, not size (see mirror_asymmetry)
    "mirror_tolerance_mm": 2.0,
    "bias_shrink": 0,  # >0: N4 bias-field correction (SimpleITK) fitted at this downsampling factor
    "fill_holes": True,
    "grow_steps": 3,
    "grow_level": 0.5,
    "max_iterations": 12,
    "enhancing": False,
    "et_z_max": 8.0,
    "spcnn": None,  # None = automatic (Chen 2011); or a dict of SPCNNParameters fields
}
WT_CLASS, ET_CLASS = 2, 3


MIN_SLICE_BRAIN_VOXELS = 2000  # slices with less brain than this borrow their neighbours' median


def brain_mask(images: dict[str, np.ndarray]) -> np.ndarray:
    """Skull-stripped inputs: the brain is wherever any sequence is non-zero."""
    return volume_brain_mask(list(images.values()))


def robust_z(image: np.ndarray, brain: np.ndarray, slice_window: int = 0) -> np.ndarray:
    """(x - median) / IQR over the brain: insensitive to the tumour's own share of the histogram.

    With ``slice_window`` > 0 the median is taken per axial slice and smoothed over that many
    slices: it removes slow inferior-superior intensity drift (a bright posterior fossa on FLAIR
    otherwise fires with the tumour)."""
    q1, med, q3 = np.quantile(image[brain], [0.25, 0.5, 0.75])
    centre = np.full(image.shape[0], med, dtype=np.float64)
    if slice_window > 0:
        counts = brain.sum(axis=(1, 2))
        valid = np.flatnonzero(counts >= MIN_SLICE_BRAIN_VOXELS)
        if len(valid):
            medians = np.array([np.median(image[z][brain[z]]) for z in valid])
            centre = ndimage.median_filter(np.interp(np.arange(image.shape[0]), valid, medians), size=slice_window, mode="nearest")
    return (image - centre[:, None, None].astype(np.float32)) / np.float32(max(q3 - q1, 1e-6))


def bias_field(image: np.ndarray, brain: np.ndarray, shrink: int, iterations: tuple[int, ...] = (20, 20)) -> np.ndarray:
    """Multiplicative N4 bias field of ``image`` over the brain, fitted on a ``shrink``-times
    downsampled copy (a smooth field needs no more; full resolution costs seconds), same shape."""
    import SimpleITK as sitk  # deferred: only this option needs it

    small = sitk.Shrink(sitk.GetImageFromArray(np.where(brain, image, 0).astype(np.float32)), [shrink] * 3)
    small_mask = sitk.Shrink(sitk.GetImageFromArray(brain.astype(np.uint8)), [shrink] * 3)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations(list(iterations))
    n4.Execute(small, small_mask)
    log_field = sitk.GetArrayFromImage(n4.GetLogBiasFieldAsImage(small))
    zoom = [a / b for a, b in zip(image.shape, log_field.shape)]
    return np.exp(ndimage.zoom(log_field, zoom, order=1, mode="nearest", grid_mode=True)).astype(np.float32)


def hyperintensity(images: dict[str, np.ndarray], brain: np.ndarray, sequences: list[str],
                   weights: list[float], z_max: float, slice_window: int = 0) -> np.ndarray:
    """Stimulus in [0, 1]: weighted mean robust z of the sequences, clipped at 0 and z_max."""
    present = [(s, w) for s, w in zip(sequences, weights) if s in images]
    if not present:
        raise ValueError(f"PCNN segmentation needs one of {', '.join(sequences)}")
    total = sum(w for _, w in present)
    z = sum(np.float32(w / total) * robust_z(images[s], brain, slice_window) for s, w in present)
    return (np.clip(z / np.float32(z_max), 0.0, 1.0) * brain).astype(np.float32)


def wt_stimulus(crop: dict[str, np.ndarray], brain: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    """The whole-tumour stimulus of ``segment_images`` (shared with detection): FLAIR/T2
    hyperintensity, after dividing them by FLAIR's N4 bias field when ``bias_shrink`` > 0 (one
    field for both: the coil's shading is common to the sequences, and one fit halves the cost)."""
    if p["bias_shrink"] > 0 and "flair" in crop:
        field = bias_field(crop["flair"], brain, int(p["bias_shrink"]))
        crop = {k: (v / field if k in p["sequences"] else v) for k, v in crop.items()}
    return hyperintensity(crop, brain, list(p["sequences"]), list(p["weights"]), float(p["z_max"]), int(p["slice_window"]))


def first_wave(stimulus: np.ndarray, region: np.ndarray, spcnn: dict | None, max_iterations: int,
               min_wave_fraction: float = 1e-3, cancel: CancelCallback | None = None) -> np.ndarray:
    """Voxels that fired by the first wave after the pulse (the brightest cluster) inside ``region``.

    A wave is an iteration where at least ``min_wave_fraction`` of the stimulated neurons fire:
    Chen's V_E puts the brightest neurons exactly at U[2] = V_E, so float rounding lets a few
    stray neurons on a clipped plateau fire at n = 2; they are not the cluster's wave.
    """
    s = stimulus * region
    active = s > 0
    count = int(np.count_nonzero(active))
    if count < 2 or s[active].min() == s[active].max():
        return np.zeros(s.shape, dtype=bool)
    params = SPCNNParameters(**spcnn) if spcnn else SPCNNParameters.from_image(s, active)
    result = run_spcnn(s, params, iterations=max_iterations, cancel=cancel,
                       stop_after_wave=int(np.ceil(min_wave_fraction * count)))
    return result.first_fire > 0


def _ball(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None, None] ** 2 + r[None, :, None] ** 2 + r[None, None, :] ** 2) <= radius ** 2


def midline(brain: np.ndarray) -> float:
    """Left-right (axis 2) index about which the brain is most symmetric.

    The brain's column profile p(x) convolved with itself peaks at k = 2c where the mirror
    x -> 2c - x overlaps the profile best; searched near the centroid, so a large tumour's
    mass effect or a head off the image centre does not move it."""
    profile = brain.sum(axis=(0, 1)).astype(np.float64)
    if not profile.any():
        return (brain.shape[2] - 1) / 2.0
    centre = float((profile * np.arange(profile.size)).sum() / profile.sum())
    overlap = np.convolve(profile, profile)
    k = np.arange(overlap.size)
    near = np.abs(k - 2 * centre) <= 0.1 * profile.size * 2
    return float(k[near][np.argmax(overlap[near])]) / 2.0


def mirror_asymmetry(stimulus: np.ndarray, brain: np.ndarray, spacing: tuple[float, ...],
                     tolerance_mm: float) -> np.ndarray:
    """Stimulus minus its left-right mirror image (the brightest mirrored voxel within ``tolerance_mm``).

    Why: normal bright tissue (a bright posterior fossa, a bias field, choroid plexus, CSF edges)
    is bilateral, so it is about as bright on the other side; a tumour is not. The tolerance
    (a grey dilation of the mirror) absorbs a tilted head or an inexact midline."""
    c = midline(brain)
    x = np.arange(stimulus.shape[2])
    mirror = np.clip(np.rint(2 * c - x).astype(int), 0, stimulus.shape[2] - 1)
    mirrored = stimulus[:, :, mirror] * ((2 * c - x >= 0) & (2 * c - x <= stimulus.shape[2] - 1))
    size = tuple(2 * int(round(tolerance_mm / d)) + 1 for d in spacing)
    if max(size) > 1:
        mirrored = ndimage.maximum_filter(mirrored, size=size)
    return stimulus - mirrored


def plausible_components(candidate: np.ndarray, brain: np.ndarray, spacing: tuple[float, ...],
                         p: dict[str, Any], asymmetry: np.ndarray | None = None) -> np.ndarray:
    """Opening, then drop tiny and rim-hugging components; keep the largest (and near-largest).

    With ``asymmetry`` (voxel-wise, see ``mirror_asymmetry``) "largest" means the largest summed
    asymmetry instead of the most voxels (components with none are then dropped), unless no
    component is asymmetric at all."""
    if p["opening_radius"] > 0:
        candidate = ndimage.binary_opening(candidate, structure=_ball(int(p["opening_radius"])))
    labels, n = ndimage.label(candidate)
    if n == 0:
        return candidate
    sizes = np.bincount(labels.ravel(), minlength=n + 1).astype(np.int64)
    sizes[0] = 0
    # the rim: brain voxels within rim_mm of the outside (in-plane and through-plane), by a
    # separable box erosion, which is much cheaper than an iterated or ball-shaped one
    size = tuple(2 * max(int(round(p["rim_mm"] / d)), 1) + 1 for d in spacing)
    inner = ndimage.minimum_filter(brain, size=size, mode="constant", cval=0)
    in_rim = np.bincount(labels[~inner].ravel(), minlength=n + 1).astype(np.int64)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    plausible = (sizes * voxel_ml >= p["min_component_ml"]) & (in_rim <= p["rim_fraction"] * sizes)
    plausible[0] = False
    if not plausible.any():
        return np.zeros_like(candidate)
    score = sizes.astype(np.float64)
    if asymmetry is not None:
        asymmetric = ndimage.sum_labels(asymmetry, labels, np.arange(n + 1))
        if (asymmetric[plausible] > 0).any():  # else (e.g. a midline tumour) fall back to size
            score = asymmetric
    score = np.where(plausible, score, 0.0)
    keep = score >= p["keep_fraction"] * score.max()
    keep[0] = False
    return keep[labels]


def fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    """2D hole filling in every axial slice at once (a 3D fill misses cores open above/below)."""
    if not mask.any():
        return mask
    box = bounding_box(mask, margin=1)
    out = mask.copy()
    out[box] = ndimage.binary_fill_holes(mask[box], structure=ndimage.generate_binary_structure(2, 1)[None])
    return out


def grow(mask: np.ndarray, allowed: np.ndarray, steps: int) -> np.ndarray:
    """Hysteresis: extend the mask by up to ``steps`` voxels through ``allowed`` voxels (the
    oedema fringe that is bright, but less so than the first wave)."""
    if steps <= 0 or not mask.any():
        return mask
    box = bounding_box(mask, margin=steps)
    out = mask.copy()
    out[box] = ndimage.binary_dilation(mask[box], iterations=steps, mask=allowed[box] | mask[box])
    return out


def segment_images(images: dict[str, np.ndarray], spacing: tuple[float, ...] = (1.0, 1.0, 1.0),
                   parameters: dict[str, Any] | None = None, progress: ProgressCallback | None = None,
                   cancel: CancelCallback | None = None) -> np.ndarray:
    """``segment`` on bare display-ordered arrays (no Study needed; used by tests and detection)."""
    p = {**DEFAULT_PARAMETERS, **(parameters or {})}
    unknown = set(p) - set(DEFAULT_PARAMETERS)
    if unknown:
        raise ValueError(f"unknown PCNN parameters: {', '.join(sorted(unknown))}")
    shape = next(iter(images.values())).shape
    out = np.zeros(shape, dtype=np.uint8)
    report(progress, 0.0, "PCNN: brain mask")
    brain_full = brain_mask(images)
    if not brain_full.any():
        return out
    box = bounding_box(brain_full, margin=1)
    brain = brain_full[box]
    crop = {k: v[box] for k, v in images.items()}
    check_cancel(cancel)
    report(progress, 0.1, "PCNN: hyperintensity")
    stimulus = wt_stimulus(crop, brain, p)
    report(progress, 0.3, "PCNN: firing")
    candidate = first_wave(stimulus, brain, p["spcnn"], int(p["max_iterations"]), cancel=cancel)
    check_cancel(cancel)
    report(progress, 0.6, "PCNN: cleanup")
    asymmetry = mirror_asymmetry(stimulus, brain, spacing, float(p["mirror_tolerance_mm"])) if p["symmetry"] else None
    wt = plausible_components(candidate, brain, spacing, p, asymmetry) & brain
    if wt.any() and p["grow_steps"] > 0:
        level = float(stimulus[candidate].min()) * float(p["grow_level"])
        wt = grow(wt, (stimulus >= level) & brain, int(p["grow_steps"]))
    if p["fill_holes"]:
        wt = fill_holes_per_slice(wt) & brain
    labels = np.where(wt, np.uint8(WT_CLASS), np.uint8(0))
    if p["enhancing"] and "t1ce" in crop and wt.any():
        check_cancel(cancel)
        report(progress, 0.8, "PCNN: enhancing tumour")
        et_stimulus = hyperintensity(crop, brain, ["t1ce"], [1.0], float(p["et_z_max"]))
        et = first_wave(et_stimulus, wt, None, int(p["max_iterations"]), cancel=cancel)
        labels[et & wt] = ET_CLASS
    out[box] = labels
    report(progress, 1.0, "PCNN: done")
    return out


def segment(study, parameters: dict[str, Any] | None = None, progress: ProgressCallback | None = None,
            cancel: CancelCallback | None = None) -> np.ndarray:
    """Segment a loaded ``Study``: uint8 internal classes (2 = whole tumour, 3 = ET) in display order."""
    return segment_images(study.images, study.geometry.spacing, parameters, progress, cancel)
