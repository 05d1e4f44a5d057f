"""Small array helpers shared by preprocessing, metrics, correction, post-processing and the PCNN.

Why a module of its own: these are neutral utilities, so the modules that need them do not have to
import ``preprocess`` (the CNN input pipeline) and its role stays visible from its name.
"""
from __future__ import annotations

import numpy as np


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...]:
    """Slices of the mask's bounding box grown by ``margin`` voxels (the whole array if empty)."""
    from scipy import ndimage

    found = ndimage.find_objects(np.asarray(mask).astype(np.uint8))
    if not found or found[0] is None:
        return tuple(slice(0, n) for n in mask.shape)
    return tuple(slice(max(s.start - margin, 0), min(s.stop + margin, n)) for s, n in zip(found[0], mask.shape))
