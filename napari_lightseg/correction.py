"""Manual-correction operations on label volumes of internal classes (0 bg, 1 NCR, 2 ED, 3 ET).

Every operation is pure: it returns a NEW array and leaves its input alone, so a widget can show,
diff and undo it (``diff`` gives the changed voxels; ``_qt.layer_edits.apply_to_layer`` writes them
into a napari layer as one undo step). Axis 0 is the slice axis (axial in the plugin's display
orientation). Arrays only: no Qt, no napari layers here. The component operations
(``remove_small_components``, ``keep_largest_component``) live in ``postprocess``, shared with the engine.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .io.labels import CLASS_NAMES
from .postprocess import FACES, keep_largest_component, remove_small_components

__all__ = ["Change", "diff", "fill_holes", "grow_class", "interpolate_class", "keep_largest_component",
           "remove_small_components", "shrink_class"]


@dataclass(frozen=True)
class Change:
    """The voxels an operation changed: what napari keeps as one undo history atom."""

    indices: tuple[np.ndarray, ...]
    old: np.ndarray
    new: np.ndarray

    @property
    def size(self) -> int:
        return int(self.old.size)


def diff(old: np.ndarray, new: np.ndarray) -> Change:
    """Which voxels differ between two label volumes, with their values before and after."""
    old, new = np.asarray(old), np.asarray(new)
    if old.shape != new.shape:
        raise ValueError(f"labels changed shape {old.shape} -> {new.shape}")
    indices = np.nonzero(old != new)
    return Change(indices, old[indices], new[indices])


def _check_class(label: int) -> None:
    if label not in CLASS_NAMES:
        raise ValueError(f"class must be one of {sorted(CLASS_NAMES)} ({', '.join(CLASS_NAMES.values())}), got {label}")


def _check_steps(voxels: int) -> int:
    if int(voxels) < 0:
        raise ValueError(f"number of voxels must be 0 or more, got {voxels}")
    return int(voxels)


def _signed_distance(mask: np.ndarray, sampling: tuple[float, ...]) -> np.ndarray:
    """Negative inside, positive outside (in mm); padded so a slice-filling mask still has an outside."""
    padded = np.pad(mask, 1)
    inside = ndimage.distance_transform_edt(padded, sampling=sampling)
    outside = ndimage.distance_transform_edt(~padded, sampling=sampling)
    return (outside - inside)[(slice(1, -1),) * mask.ndim]


def interpolate_class(labels: np.ndarray, label: int, first: int, last: int,
                      spacing: tuple[float, ...] = (1.0, 1.0, 1.0), overwrite: bool = False) -> np.ndarray:
    """Shape-based interpolation of one class between two edited slices (along axis 0).

    The class's signed distance maps on slices ``first`` and ``last`` are blended linearly; the class
    on the slices in between becomes the blend's inside. Its old voxels there go to background; other
    classes are kept unless ``overwrite``. Both slices must hold the class.
    """
    _check_class(label)
    first, last = sorted((int(first), int(last)))
    if first < 0 or last >= labels.shape[0]:
        raise ValueError(f"slices {first} and {last} are outside 0..{labels.shape[0] - 1}")
    out = np.array(labels, copy=True)
    ends = [out[first] == label, out[last] == label]
    for index, mask in zip((first, last), ends):
        if not mask.any():
            raise ValueError(f"slice {index} holds no {CLASS_NAMES[label]} voxels to interpolate from")
    sampling = tuple(float(s) for s in spacing[1:])
    d_first, d_last = (_signed_distance(m, sampling) for m in ends)
    for index in range(first + 1, last):
        t = (index - first) / (last - first)
        inside = (1.0 - t) * d_first + t * d_last < 0
        plane = out[index]
        plane[plane == label] = 0
        plane[inside & ((plane == 0) | overwrite)] = label
    return out


def fill_holes(labels: np.ndarray, label: int | None = None, per_slice: bool = False) -> np.ndarray:
    """Fill background enclosed by a class (``label``) or by the whole tumour (``None``).

    A class fills its holes only where they are background (other classes inside stay). Holes of the
    whole tumour take the class of the nearest tumour voxel. ``per_slice`` fills 2D holes on each
    slice along axis 0 (holes open above or below still get filled); otherwise 3D holes.
    """
    if label is not None:
        _check_class(label)
    out = np.array(labels, copy=True)
    region = out == label if label is not None else out > 0
    if per_slice:
        filled = np.stack([ndimage.binary_fill_holes(plane) for plane in region])
    else:
        filled = ndimage.binary_fill_holes(region)
    holes = filled & (out == 0)
    if not holes.any():
        return out
    if label is not None:
        out[holes] = label
    else:  # holes lie inside the tumour's bounding box, and so do their nearest tumour voxels
        box = ndimage.find_objects(filled.astype(np.uint8))[0]
        view, box_holes = out[box], holes[box]
        nearest = ndimage.distance_transform_edt(view == 0, return_distances=False, return_indices=True)
        view[box_holes] = view[tuple(axis[box_holes] for axis in nearest)]
    return out


def grow_class(labels: np.ndarray, label: int, voxels: int = 1) -> np.ndarray:
    """Dilate a class by ``voxels`` face-connected steps into background only (other classes are kept)."""
    _check_class(label)
    out = np.array(labels, copy=True)
    for _ in range(_check_steps(voxels)):
        grown = ndimage.binary_dilation(out == label, structure=ndimage.generate_binary_structure(out.ndim, FACES))
        out[grown & (out == 0)] = label
    return out


def shrink_class(labels: np.ndarray, label: int, voxels: int = 1) -> np.ndarray:
    """Erode a class by ``voxels`` face-connected steps; the freed voxels become background."""
    _check_class(label)
    steps = _check_steps(voxels)
    out = np.array(labels, copy=True)
    if not steps:  # scipy reads iterations=0 as "until nothing changes"
        return out
    mask = out == label
    kept = ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(out.ndim, FACES),
                                  iterations=steps)
    out[mask & ~kept] = 0
    return out
