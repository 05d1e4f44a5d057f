"""What a reader of the picture needs, computed without Qt or a viewer: the legend, orientation
letters for a displayed plane, a detection's per-slice rectangles, per-class 3D surfaces and the
slice to open on.

Everything takes arrays and affines, so it is unit-tested for LPS, RAS and permuted grids.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from html import escape
from typing import Protocol

import numpy as np
from scipy import ndimage as ndi

from .io import CLASSES, REGIONS

# RAS+ world axes (NIfTI): (letter at the negative end, letter at the positive end)
WORLD_AXIS_LETTERS = (("L", "R"), ("P", "A"), ("I", "S"))  # +x points to the patient's right, +y anterior, +z up
SIDES = ("top", "bottom", "left", "right")


# ---------------------------------------------------------------- class identity
def class_features() -> dict[str, list]:
    """Labels ``features`` table: napari's status bar shows ``class: ET`` instead of ``3`` on hover."""
    return {"index": [0, *(c.value for c in CLASSES)],
            "class": ["background", *(c.name for c in CLASSES)],
            "description": ["no tumour", *(c.long_name for c in CLASSES)]}


@dataclass(frozen=True)
class LegendRow:
    """One line of the legend: a class or region, its colour and its volume in mL."""
    name: str
    description: str
    color: str | None  # None: a region (no colour of its own)
    volume_ml: float


def legend_rows(classes: np.ndarray, spacing: tuple[float, ...]) -> list[LegendRow]:
    """One row per class (name, colour, mL), then the whole tumour: what the legend and screenshots show."""
    counts = np.bincount(np.asarray(classes, dtype=np.intp).ravel(), minlength=len(CLASSES) + 1)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    rows = [LegendRow(c.name, c.long_name, c.color, float(counts[c.value]) * voxel_ml) for c in CLASSES]
    whole = sum(float(counts[v]) for v in REGIONS["WT"]) * voxel_ml
    return [*rows, LegendRow("WT", "whole tumour (NCR + ED + ET)", None, whole)]


def legend_html(title: str, rows: list[LegendRow]) -> str:
    """Rich text for a QLabel: a coloured square, the class name and its volume per row."""
    lines = [f"<b>{escape(title)}</b>"]
    for row in rows:
        swatch = (f"<span style='background-color:{row.color};color:{row.color}'>&nbsp;&nbsp;&nbsp;</span>"
                  if row.color else "&nbsp;&nbsp;&nbsp;&nbsp;")
        lines.append(f"{swatch}&nbsp;<span title='{escape(row.description)}'><b>{row.name}</b> "
                     f"{row.volume_ml:.1f} mL</span>")
    return "<br>".join(lines)


def legend_text(rows: list[LegendRow]) -> str:
    """One line for logs and tests: ``NCR 1.2 mL · ED 30.1 mL · ET 4.0 mL · WT 35.3 mL``."""
    return " · ".join(f"{row.name} {row.volume_ml:.1f} mL" for row in rows)


# ---------------------------------------------------------------- orientation
def axis_end_letters(direction: np.ndarray) -> tuple[str, str]:
    """(letter at index 0, letter at the last index) of an array axis whose world (RAS+) direction is given.

    An oblique axis takes the letter of its largest world component, as scanners' consoles do.
    """
    direction = np.asarray(direction, dtype=float)[:3]
    k = int(np.argmax(np.abs(direction)))
    negative, positive = WORLD_AXIS_LETTERS[k]
    return (negative, positive) if direction[k] > 0 else (positive, negative)


@dataclass(frozen=True)
class PlaneMarkers:
    """Letters at the edges of a displayed plane and the left-right convention it follows."""

    top: str
    bottom: str
    left: str
    right: str

    @property
    def convention(self) -> str:
        """Radiological: the patient's right on the screen's left (as if facing the patient)."""
        if {self.left, self.right} != {"R", "L"}:
            return ""
        return "radiological" if self.left == "R" else "neurological"

    def as_dict(self) -> dict[str, str]:
        return {side: getattr(self, side) for side in SIDES}


def plane_markers(display_affine: np.ndarray, displayed_axes: tuple[int, int]) -> PlaneMarkers:
    """Markers for a plane shown with ``displayed_axes`` = (row axis, column axis) of the array.

    napari draws index 0 of the row axis at the top and of the column axis on the left.
    """
    affine = np.asarray(display_affine, dtype=float)
    row_axis, column_axis = displayed_axes
    top, bottom = axis_end_letters(affine[:3, row_axis])
    left, right = axis_end_letters(affine[:3, column_axis])
    return PlaneMarkers(top, bottom, left, right)


def marker_positions(shape: tuple[int, ...], displayed_axes: tuple[int, int],
                     current: tuple[float, ...], inset: float = 0.04) -> dict[str, tuple[float, ...]]:
    """Array-index positions just inside the middle of each edge of the displayed plane, on the
    current slice (so the letters stay on screen while scrolling)."""
    row_axis, column_axis = displayed_axes
    rows, columns = shape[row_axis], shape[column_axis]
    spots = {"top": (inset * rows, columns / 2), "bottom": ((1 - inset) * rows, columns / 2),
             "left": (rows / 2, inset * columns), "right": (rows / 2, (1 - inset) * columns)}
    positions = {}
    for side, (row, column) in spots.items():
        point = [float(c) for c in current[: len(shape)]]
        point[row_axis], point[column_axis] = row, column
        positions[side] = tuple(point)
    return positions


# ---------------------------------------------------------------- boxes on slices
class SliceBoxLike(Protocol):
    """A box in one axial slice, inclusive display indices (``pcnn.detect.SliceBox``)."""

    z: int
    y0: int
    x0: int
    y1: int
    x1: int


def slice_rectangles(slice_boxes: Iterable[SliceBoxLike]) -> list[np.ndarray]:
    """One napari rectangle (4 corners, (z, y, x)) per slice box: the box drawn on its own slice only.

    Corners are voxel edges: an inclusive box from y0 to y1 covers y0 .. y1 + 1 on screen.
    """
    return [np.array([(b.z, b.y0, b.x0), (b.z, b.y0, b.x1 + 1), (b.z, b.y1 + 1, b.x1 + 1), (b.z, b.y1 + 1, b.x0)],
                     dtype=float) for b in slice_boxes]


# ---------------------------------------------------------------- 3D and first slice
@dataclass(frozen=True)
class Surface:
    """A triangle mesh in array-index coordinates (the layer's scale turns it into mm)."""

    name: str
    color: str
    vertices: np.ndarray
    faces: np.ndarray


def mask_surface(mask: np.ndarray, smooth_sigma: float = 1.0, step: int = 1) -> tuple[np.ndarray, np.ndarray] | None:
    """Smoothed iso-surface of a binary mask, computed on its bounding box only (fast on big grids)."""
    from skimage.measure import marching_cubes

    mask = np.asarray(mask, dtype=bool)
    box = ndi.find_objects(mask.astype(np.uint8))
    if not box or box[0] is None:
        return None
    pad = 2 + int(np.ceil(2 * smooth_sigma))
    box = tuple(slice(max(s.start - pad, 0), min(s.stop + pad, n)) for s, n in zip(box[0], mask.shape, strict=True))
    field = ndi.gaussian_filter(mask[box].astype(np.float32), smooth_sigma) if smooth_sigma > 0 else mask[box].astype(np.float32)
    if field.max() <= 0.5 or min(field.shape) < 2:
        return None
    vertices, faces, _, _ = marching_cubes(field, level=0.5, step_size=step)
    return vertices + np.array([s.start for s in box], dtype=np.float32), faces


def class_surfaces(classes: np.ndarray, smooth_sigma: float = 1.0) -> list[Surface]:
    """One surface per present class, in the class table's colours."""
    surfaces = []
    for cls in CLASSES:
        mesh = mask_surface(np.asarray(classes) == cls.value, smooth_sigma)
        if mesh is not None:
            surfaces.append(Surface(cls.name, cls.color, *mesh))
    return surfaces


def brain_surface(image: np.ndarray, step: int = 2) -> tuple[np.ndarray, np.ndarray] | None:
    """The outline of the (skull-stripped) brain, coarse on purpose: a context shell for the 3D view."""
    return mask_surface(np.asarray(image) > 0, smooth_sigma=2.0, step=step)


def tumour_center_slice(classes: np.ndarray, axis: int = 0) -> int | None:
    """Index along ``axis`` of the tumour's centre of mass (None without tumour): where to open."""
    mask = np.asarray(classes) > 0
    if not mask.any():
        return None
    profile = mask.sum(axis=tuple(a for a in range(mask.ndim) if a != axis))
    return int(round(float(np.average(np.arange(profile.size), weights=profile))))
