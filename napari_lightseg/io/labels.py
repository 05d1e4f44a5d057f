"""The one class table and the BraTS label conventions.

Internally (in layers, engine results and training targets) classes are contiguous:
0 background, 1 NCR (necrotic / non-enhancing core), 2 ED (edema), 3 ET (enhancing tumour).
Files use either the BraTS <=2021 convention (1/2/4) or the 2023+ one (1/2/3).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TumourClass:
    """A tumour label value with the short name, description and colour it is shown with."""
    value: int
    name: str
    long_name: str
    color: str  # hex RGB(A)


CLASSES: tuple[TumourClass, ...] = (
    TumourClass(1, "NCR", "necrotic / non-enhancing tumour core", "#ff0000"),
    TumourClass(2, "ED", "peritumoural edema", "#00ff00"),
    TumourClass(3, "ET", "enhancing tumour", "#ffff00"),
)
CLASS_NAMES: dict[int, str] = {c.value: c.name for c in CLASSES}
CLASS_COLORS: dict[int, str] = {c.value: c.color for c in CLASSES}
NUM_CLASSES = len(CLASSES) + 1  # with background

# file value -> internal value, per convention
CONVENTIONS: dict[str, dict[int, int]] = {
    "brats2021": {0: 0, 1: 1, 2: 2, 4: 3},
    "brats2023": {0: 0, 1: 1, 2: 2, 3: 3},
}
DEFAULT_CONVENTION = "brats2021"

# BraTS evaluation regions, as sets of internal classes
REGIONS: dict[str, tuple[int, ...]] = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}


class LabelError(ValueError):
    """A label volume holds values that no known convention explains."""


def distinct_values(labels: np.ndarray) -> np.ndarray:
    """``np.unique(labels)``, about twice as fast for a label volume (integers 0-15): one comparison per value
    instead of a sort.

    Why: the CLI reads the ground truth beside a case only to learn its label convention, and sorting its
    9 million voxels was ~0.1 CPU s of every run. Anything else goes through ``np.unique``.
    """
    data = np.asarray(labels)
    if data.size and data.dtype.kind in "iu" or (data.dtype.kind == "f" and data.size and np.isfinite(data).all()):
        low, high = data.min(), data.max()
        if low >= 0 and high <= 15:
            small = data if data.dtype.kind in "iu" else data.astype(np.uint8)  # integers: compared as stored
            if small is data or np.array_equal(small, data):  # integers only
                present = [v for v in range(int(low), int(high) + 1) if v in (low, high) or (small == v).any()]
                return np.array(present, dtype=data.dtype)
    return np.unique(data)


def detect_convention(values: np.ndarray | set[int], source: str = "labels") -> str | None:
    """Return the convention that explains these label values, or None if both do (0/1/2 only)."""
    present = {int(v) for v in np.unique(np.asarray(list(values) if isinstance(values, set) else values))}
    unknown = present - {0, 1, 2, 3, 4}
    if unknown:
        if len(present) > 16:  # an image, not a mask: say so in one short line, not a list of thousands
            raise LabelError(f"{source}: not a label volume ({len(present):,} distinct values; expected 0/1/2/4 or 0/1/2/3)")
        raise LabelError(f"{source}: unexpected label values {sorted(unknown)} (expected 0,1,2 and 4 or 3)")
    if 3 in present and 4 in present:
        raise LabelError(f"{source}: has both label 3 and 4; neither BraTS 2021 (1/2/4) nor 2023 (1/2/3)")
    if 4 in present:
        return "brats2021"
    if 3 in present:
        return "brats2023"
    return None


def to_internal(labels: np.ndarray, source: str = "labels") -> tuple[np.ndarray, str | None]:
    """Map a file's label volume to internal classes; returns (classes uint8, detected convention)."""
    data = np.asarray(labels)
    if not np.issubdtype(data.dtype, np.integer) and (not np.all(np.isfinite(data)) or np.any(data != np.round(data))):
            raise LabelError(f"{source}: label volume has non-integer values")
    values = np.unique(data)
    convention = detect_convention(values, source)
    lut = np.zeros(5, dtype=np.uint8)
    for file_value, internal in CONVENTIONS[convention or DEFAULT_CONVENTION].items():
        lut[file_value] = internal
    return lut[data.astype(np.intp)], convention


def from_internal(classes: np.ndarray, convention: str = DEFAULT_CONVENTION) -> np.ndarray:
    """Map internal classes to a file convention's values (uint8)."""
    if convention not in CONVENTIONS:
        raise LabelError(f"unknown label convention {convention!r}; use one of {sorted(CONVENTIONS)}")
    data = np.asarray(classes)
    if data.size and (data.min() < 0 or data.max() >= NUM_CLASSES):
        raise LabelError(f"internal labels must be 0..{NUM_CLASSES - 1}, got {int(data.min())}..{int(data.max())}")
    file_values = {internal: file_value for file_value, internal in CONVENTIONS[convention].items()}
    classes_u8 = data.astype(np.uint8, copy=False)  # 0..3, checked above (``lut[data.astype(np.intp)]``'s index)
    values = classes_u8.copy(order="K")  # laid out as ``lut[data]`` would be
    for internal in range(NUM_CLASSES):  # only the classes a convention renumbers (brats2021: 3 -> 4): 2x faster than a lut
        if file_values.get(internal, 0) != internal:
            values[classes_u8 == internal] = file_values.get(internal, 0)
    return values


def region_mask(classes: np.ndarray, region: str) -> np.ndarray:
    """Boolean mask of a BraTS region (WT, TC, ET) from internal classes."""
    return np.isin(classes, REGIONS[region])


# ---------------------------------------------------------------- label-names sidecar
SIDECAR_FORMAT = "napari-lightseg labels 1"


def sidecar_path(nifti_path: str | Path) -> Path:
    """``seg.nii.gz`` -> ``seg.labels.json`` beside the mask (not ``seg.json``: that name is a run report's)."""
    path = Path(nifti_path)
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(name + ".labels.json")


def label_sidecar(convention: str = DEFAULT_CONVENTION, **extra: Any) -> dict[str, Any]:
    """What a mask's values mean, in the file's convention: names, long names, colours."""
    if convention not in CONVENTIONS:
        raise LabelError(f"unknown label convention {convention!r}; use one of {sorted(CONVENTIONS)}")
    to_file = {internal: value for value, internal in CONVENTIONS[convention].items()}
    labels = [{"value": 0, "name": "background", "description": "background", "color": None}]
    labels += [{"value": to_file[c.value], "name": c.name, "description": c.long_name, "color": c.color} for c in CLASSES]
    return {"format": SIDECAR_FORMAT, "convention": convention, "labels": labels, **extra}


def read_label_sidecar(nifti_path: str | Path) -> dict[str, Any] | None:
    """The sidecar of a mask if one is there and is ours (None otherwise; never raises)."""
    path = sidecar_path(nifti_path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT or data.get("convention") not in CONVENTIONS:
        return None
    return data
