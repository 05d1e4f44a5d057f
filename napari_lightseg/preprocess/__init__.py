"""Preprocessing shared by training (``src_models``) and inference (``engine``): one implementation.

A volume is a channels-first float32 array (C, Z, Y, X) in display orientation; the CNNs see its
axial slices (Y, X). Steps: brain mask (any sequence non-zero), brain bounding-box crop padded to a
multiple of ``PAD_MULTIPLE`` so every U-Net level divides evenly, per-sequence z-score inside the brain.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..arrays import bounding_box

PAD_MULTIPLE = 16
CLIP_Z = 5.0


@dataclass(frozen=True)
class Crop:
    """Brain bounding box in a (Z, Y, X) volume, as slices; padded size may exceed the volume."""

    z: slice
    y: slice
    x: slice
    shape: tuple[int, int, int]  # full volume shape

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return (self.z, self.y, self.x)


def brain_mask(volume: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """Voxels where any sequence is non-zero (BraTS data are skull-stripped)."""
    mask = np.zeros(volume[0].shape, dtype=bool)
    nonzero = np.empty(volume[0].shape, dtype=bool)  # one scratch array, not one temporary per channel
    for channel in volume:
        np.logical_or(mask, np.not_equal(channel, 0, out=nonzero), out=mask)
    return mask


def brain_crop(mask: np.ndarray, margin: int = 2) -> Crop:
    """Bounding box of the mask, with a margin, grown in Y/X to a multiple of ``PAD_MULTIPLE``."""
    shape = mask.shape
    bounds = list(bounding_box(mask, margin))  # the whole volume when the mask is empty
    for axis in (1, 2):  # in-plane: grow symmetrically to a multiple, staying inside where possible
        lo, hi = bounds[axis].start, bounds[axis].stop
        want = -(-(hi - lo) // PAD_MULTIPLE) * PAD_MULTIPLE
        lo = max(lo - (want - (hi - lo)) // 2, 0)
        hi = lo + want
        if hi > shape[axis]:
            hi = shape[axis]
            lo = max(hi - want, 0)
        bounds[axis] = slice(lo, hi)
    return Crop(bounds[0], bounds[1], bounds[2], shape=shape)


def normalize(volume: np.ndarray | list[np.ndarray], mask: np.ndarray) -> np.ndarray:
    """Per-sequence z-score inside the brain, clipped; zero outside the brain."""
    out = np.zeros((len(volume), *mask.shape), dtype=np.float32)
    for c in range(len(volume)):
        values = volume[c][mask]
        if values.size == 0:
            continue
        mean, std = float(values.mean()), float(values.std())
        scale = std if std > 1e-6 else 1.0
        if values.dtype.kind != "f":  # integers: the arithmetic promotes to float64
            out[c][mask] = np.clip((values - mean) / scale, -CLIP_Z, CLIP_Z)
            continue
        scaled = np.subtract(values, mean, out=values)  # floats: the same operations in place, no temporaries
        scaled /= scale
        out[c][mask] = np.clip(scaled, -CLIP_Z, CLIP_Z, out=scaled)
    return out


def prepare(volume: np.ndarray | list[np.ndarray], mask: np.ndarray | None = None) -> tuple[np.ndarray, Crop]:
    """Crop to the brain and normalize (C, Z, Y, X) data, an array or a list of volumes (no stacking
    copy); returns (C, z, y, x) float32 with Y/X padded to PAD_MULTIPLE, and the crop.

    ``mask``: ``brain_mask(volume)`` when the caller already has it (the engine: from the input checks)."""
    if mask is None:
        mask = brain_mask(volume)
    crop = brain_crop(mask)
    cropped = normalize([channel[crop.slices] for channel in volume], mask[crop.slices])
    return pad_to_multiple(cropped), crop


def pad_to_multiple(array: np.ndarray) -> np.ndarray:
    """Zero-pad the last two axes up to a multiple of PAD_MULTIPLE (needed when the volume is small)."""
    pads = [(0, 0)] * (array.ndim - 2) + [(0, (-s) % PAD_MULTIPLE) for s in array.shape[-2:]]
    return np.pad(array, pads) if any(p[1] for p in pads) else array


def uncrop(labels: np.ndarray, crop: Crop) -> np.ndarray:
    """Put cropped (possibly padded) labels back into a full-size volume of zeros."""
    full = np.zeros(crop.shape, dtype=labels.dtype)
    z, y, x = crop.slices
    full[z, y, x] = labels[: z.stop - z.start, : y.stop - y.start, : x.stop - x.start]
    return full
