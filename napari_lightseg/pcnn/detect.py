"""Tumour detection as a 3D box: selective search + PCNN signatures, slice by slice.

The seed's six steps, per axial slice: (1) selective-search boxes (Felzenszwalb regions grouped
hierarchically by similarity); (2) drop boxes larger than theta; (3) cut the patches;
(4) each patch's PCNN signature S[n] = firings in the patch at iteration n / patch area;
(5) Euclidean distance from S to a reference signature M; (6) keep the closest box.

Why the reference is not the whole slice's signature: a signature normalised by area is a
firing *profile*, and the profile closest to the whole brain's is that of ordinary brain
tissue, so "smallest distance to the slice" finds the most normal patch, not the tumour. The
image and M are therefore chosen so that the closest patch is the tumour:

* image: FLAIR/T2 hyperintensity (the segmentation's stimulus), where only the bright tail
  fires after the synchronising pulse and the tumour fires first;
* M: the signature of the slice's brightest cluster, i.e. the voxels the PCNN segmentation
  marks in that slice (the slice's "tumour model"); a patch that is mostly tumour has that
  profile, a patch of normal brain or a patch that is mostly surround does not;
* slices: only those where the segmentation finds tumour (elsewhere there is no model);
  near-ties (within ``tie_tolerance`` of the best distance) go to the larger box, because a
  tiny patch inside the tumour matches M as well as the whole lesion does.

One SPCNN run (with Chen's automatic parameters from the whole brain, so that all signatures
share a scale) gives every pulse Y[n]; a patch's signature is read off that run through
summed-area tables, which equals cutting the patch out of the firing maps and keeps each
patch's real neighbourhood in the linking. The per-slice boxes are combined into one 3D box
over the slices whose boxes agree with the median box.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from skimage.segmentation import felzenszwalb

from ..arrays import bounding_box
from ..progress import CancelCallback, ProgressCallback, check_cancel, report
from ..types import Box, Detection, SliceBox
from .core import SPCNNParameters, run_spcnn
from .segment import DEFAULT_PARAMETERS as SEGMENT_PARAMETERS
from .segment import brain_mask, segment_images, wt_stimulus

SOURCE = "pcnn"  # Detection.source of this detector's results

DETECT_PARAMETERS: dict[str, Any] = {
    "iterations": 8,
    "theta": 0.25,  # step 2: largest box area, as a fraction of the slice's brain area
    "min_box_area": 25,  # pixels; single specks have no meaningful signature
    "felzenszwalb_scale": 50.0,
    "felzenszwalb_sigma": 0.8,
    "felzenszwalb_min_size": 20,
    "histogram_bins": 16,
    "tie_tolerance": 0.05,
    "min_slice_area": 30,  # segmented pixels for a slice to be searched
    "max_slices": 40,
    "segment": None,  # parameters for the segmentation that selects slices and gives M
}


# ---- step 1: selective search ------------------------------------------------------------

def selective_search(image: np.ndarray, scale: float = 50.0, sigma: float = 0.8, min_size: int = 20,
                     bins: int = 16) -> np.ndarray:
    """Boxes (N x 4: y0, x0, y1, x1 inclusive) of Felzenszwalb regions and of every merge of the
    hierarchical grouping (Uijlings et al. 2013): repeatedly merge the most similar pair of
    adjacent regions, similarity = histogram intersection + small-size + fill terms."""
    regions = felzenszwalb(image, scale=scale, sigma=sigma, min_size=min_size, channel_axis=None)
    n = int(regions.max()) + 1
    flat = regions.ravel()
    size = np.bincount(flat, minlength=n).astype(np.float64)
    ys, xs = np.indices(image.shape)
    y0, x0 = np.full(n, image.shape[0]), np.full(n, image.shape[1])
    y1, x1 = np.zeros(n, int), np.zeros(n, int)
    np.minimum.at(y0, flat, ys.ravel())
    np.minimum.at(x0, flat, xs.ravel())
    np.maximum.at(y1, flat, ys.ravel())
    np.maximum.at(x1, flat, xs.ravel())
    level = np.clip((np.asarray(image, np.float64) * bins).astype(int), 0, bins - 1).ravel()
    hist = np.zeros((n, bins))
    np.add.at(hist, (flat, level), 1.0)
    hist /= np.maximum(size[:, None], 1)
    # adjacency from horizontally and vertically touching pixels
    pairs = np.concatenate([np.stack([regions[:, :-1].ravel(), regions[:, 1:].ravel()], 1),
                            np.stack([regions[:-1].ravel(), regions[1:].ravel()], 1)])
    pairs = np.unique(np.sort(pairs[pairs[:, 0] != pairs[:, 1]], axis=1), axis=0)
    area = float(image.size)
    boxes = {i: (int(y0[i]), int(x0[i]), int(y1[i]), int(x1[i])) for i in range(n)}
    hists = {i: hist[i] for i in range(n)}
    sizes = {i: size[i] for i in range(n)}
    neighbours: dict[int, set[int]] = {i: set() for i in range(n)}
    for a, b in pairs:
        neighbours[int(a)].add(int(b))
        neighbours[int(b)].add(int(a))

    def similarity(a: int, b: int) -> float:
        ba, bb = boxes[a], boxes[b]
        box_area = (max(ba[2], bb[2]) - min(ba[0], bb[0]) + 1) * (max(ba[3], bb[3]) - min(ba[1], bb[1]) + 1)
        return (float(np.minimum(hists[a], hists[b]).sum()) + 1.0 - (sizes[a] + sizes[b]) / area
                + 1.0 - (box_area - sizes[a] - sizes[b]) / area)

    sims = {(int(a), int(b)): similarity(int(a), int(b)) for a, b in pairs}
    out = list(boxes.values())
    next_id = n
    while sims:
        a, b = max(sims, key=lambda pair: sims[pair])
        new = next_id
        next_id += 1
        ba, bb = boxes[a], boxes[b]
        boxes[new] = (min(ba[0], bb[0]), min(ba[1], bb[1]), max(ba[2], bb[2]), max(ba[3], bb[3]))
        sizes[new] = sizes[a] + sizes[b]
        hists[new] = (hists[a] * sizes[a] + hists[b] * sizes[b]) / sizes[new]
        out.append(boxes[new])
        neighbours[new] = (neighbours.pop(a) | neighbours.pop(b)) - {a, b}
        sims = {k: v for k, v in sims.items() if a not in k and b not in k}
        for c in neighbours[new]:
            neighbours[c] -= {a, b}
            neighbours[c].add(new)
            sims[(c, new)] = similarity(c, new)
    return np.unique(np.array(out, dtype=np.int64), axis=0)


# ---- steps 3-5: patch signatures and distances --------------------------------------------

def summed_area(stack: np.ndarray) -> np.ndarray:
    """Summed-area tables over the last two axes, with a leading zero row and column."""
    table = np.zeros(stack.shape[:-2] + (stack.shape[-2] + 1, stack.shape[-1] + 1), dtype=np.int64)
    table[..., 1:, 1:] = stack.cumsum(-2, dtype=np.int64).cumsum(-1)
    return table


def window_sums(table: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Sums over inclusive boxes (N x 4) from a summed-area table (..., H+1, W+1) -> (..., N)."""
    y0, x0, y1, x1 = boxes[:, 0], boxes[:, 1], boxes[:, 2] + 1, boxes[:, 3] + 1
    return table[..., y1, x1] - table[..., y0, x1] - table[..., y1, x0] + table[..., y0, x0]


def signature_of(pulses: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Signature of a window of a pulse stack (iterations, H, W): firings per iteration / area."""
    if mask is None:
        return pulses.reshape(len(pulses), -1).sum(1) / float(pulses[0].size)
    return pulses[:, mask].sum(1) / max(float(mask.sum()), 1.0)


def patch_signatures(pulses: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Signatures (N x iterations) of the boxes cut from one slice's pulses (iterations, H, W)."""
    areas = ((boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)).astype(np.float64)
    return (window_sums(summed_area(pulses), boxes) / areas).T


# ---- the detector ---------------------------------------------------------------------------

def detect_images(images: dict[str, np.ndarray], spacing: tuple[float, ...] = (1.0, 1.0, 1.0),
                  parameters: dict[str, Any] | None = None, progress: ProgressCallback | None = None,
                  cancel: CancelCallback | None = None) -> Detection:
    """``detect`` on bare display-ordered arrays."""
    p = {**DETECT_PARAMETERS, **(parameters or {})}
    unknown = set(p) - set(DETECT_PARAMETERS)
    if unknown:
        raise ValueError(f"unknown detection parameters: {', '.join(sorted(unknown))}")
    report(progress, 0.0, "detect: segmentation")
    seg_parameters = {**SEGMENT_PARAMETERS, **(p["segment"] or {}), "enhancing": False}
    tumour = segment_images(images, spacing, seg_parameters, cancel=cancel) > 0
    brain_full = brain_mask(images)
    if not brain_full.any():
        return Detection.nothing(SOURCE)
    box = bounding_box(brain_full, margin=1)
    brain, tumour = brain_full[box], tumour[box]
    crop = {k: v[box] for k, v in images.items()}
    stimulus = wt_stimulus(crop, brain, seg_parameters)
    area_per_slice = tumour.sum(axis=(1, 2))
    candidates = np.flatnonzero(area_per_slice >= p["min_slice_area"])
    if candidates.size == 0:
        return Detection.nothing(SOURCE)
    if candidates.size > p["max_slices"]:  # evenly spaced subset keeps the z extent
        candidates = candidates[np.round(np.linspace(0, candidates.size - 1, p["max_slices"])).astype(int)]
    check_cancel(cancel)
    report(progress, 0.3, "detect: PCNN signatures")
    active = stimulus > 0
    params = SPCNNParameters.from_image(stimulus, active)
    pulses = run_spcnn(stimulus[candidates], params, iterations=int(p["iterations"]), cancel=cancel,
                       keep_pulses=True).pulses
    assert pulses is not None  # keep_pulses=True
    slice_boxes: list[SliceBox] = []
    for i, z in enumerate(candidates):
        check_cancel(cancel)
        report(progress, 0.4 + 0.55 * i / len(candidates), f"detect: slice {int(z) + box[0].start}")
        found = _best_box(stimulus[z], brain[z], tumour[z], pulses[:, i], p)
        if found is not None:
            y0, x0, y1, x1, distance = found
            slice_boxes.append(SliceBox(int(z) + box[0].start, y0 + box[1].start, x0 + box[2].start,
                                        y1 + box[1].start, x1 + box[2].start, distance))
    report(progress, 1.0, "detect: done")
    tumour_box = combine_boxes(slice_boxes)
    if tumour_box is None:
        return Detection.nothing(SOURCE)
    return Detection(tumour_box, source=SOURCE, slice_boxes=tuple(slice_boxes))


def _best_box(image: np.ndarray, brain: np.ndarray, model: np.ndarray, pulses: np.ndarray,
              p: dict[str, Any]) -> tuple[int, int, int, int, float] | None:
    """Steps 1-6 on one slice; M is the signature of the slice's segmented (brightest) cluster."""
    boxes = selective_search(image, p["felzenszwalb_scale"], p["felzenszwalb_sigma"], p["felzenszwalb_min_size"],
                             p["histogram_bins"])
    areas = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    keep = (areas <= p["theta"] * brain.sum()) & (areas >= p["min_box_area"])
    boxes, areas = boxes[keep], areas[keep]
    if len(boxes) == 0:
        return None
    signatures = patch_signatures(pulses, boxes)
    reference = signature_of(pulses, model)
    distances = np.linalg.norm(signatures - reference, axis=1)
    near = np.flatnonzero(distances <= distances.min() + p["tie_tolerance"])
    best = near[np.argmax(areas[near])]
    y0, x0, y1, x1 = (int(v) for v in boxes[best])
    return y0, x0, y1, x1, float(distances[best])


def combine_boxes(slice_boxes: list[SliceBox]) -> Box | None:
    """One 3D box over the slices whose box overlaps the median box (outlier slices drop out)."""
    if not slice_boxes:
        return None
    arr = np.array([[b.y0, b.x0, b.y1, b.x1] for b in slice_boxes], dtype=float)
    med = np.median(arr, axis=0)
    overlap_y = (arr[:, 0] <= med[2]) & (arr[:, 2] >= med[0])
    overlap_x = (arr[:, 1] <= med[3]) & (arr[:, 3] >= med[1])
    agree = overlap_y & overlap_x
    if not agree.any():
        agree[:] = True
    zs = np.array([b.z for b in slice_boxes])[agree]
    sel = arr[agree]
    return Box.of((zs.min(), sel[:, 0].min(), sel[:, 1].min()), (zs.max(), sel[:, 2].max(), sel[:, 3].max()))


def detect(study, parameters: dict[str, Any] | None = None, progress: ProgressCallback | None = None,
           cancel: CancelCallback | None = None) -> Detection:
    """Detect the tumour of a loaded ``Study``: a 3D box in display indices, and the per-slice boxes."""
    return detect_images(study.images, study.geometry.spacing, parameters, progress, cancel)


def detection_report(study, detection: Detection) -> dict[str, Any]:
    """JSON-ready report: the box in the FLAIR file's own voxel order (inclusive) and in world mm."""
    out: dict[str, Any] = {"case": study.name, "box3d_voxel": None, "box3d_world": None,
                           "slice_boxes": [b.to_dict() for b in detection.slice_boxes]}
    if detection.box is None:  # nothing found: the report says so with nulls
        return out
    (z0, y0, x0), (z1, y1, x1) = detection.box
    corners = np.array([[z, y, x] for z in (z0, z1) for y in (y0, y1) for x in (x0, x1)], dtype=float)
    disk = np.rint(study.geometry.display_index_to_disk(corners)).astype(int)
    world = (np.c_[disk, np.ones(len(disk))] @ np.asarray(study.geometry.affine).T)[:, :3]
    out["box3d_voxel"] = [[int(v) for v in disk.min(0)], [int(v) for v in disk.max(0)]]
    out["box3d_world"] = [[float(v) for v in world.min(0)], [float(v) for v in world.max(0)]]
    return out
