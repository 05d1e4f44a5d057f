"""Brain extraction (skull stripping) on the CPU with deepbet's two networks exported to ONNX.

Our tumour CNNs were trained on skull-stripped BraTS data (zeros outside the brain), so a full-head
clinical study must be stripped first. deepbet (Fisch et al., MIT licence,
https://github.com/wwu-mmll/deepbet, version 1.0.2) is a trained two-stage extractor; this module
reproduces its ``BrainExtraction.run_model`` + ``postprocess`` in NumPy/cc3d + ONNX Runtime (no
PyTorch):

1. the volume in RAS voxel order (deepbet reads ``nib.as_closest_canonical``), resampled to 128^3
   with PyTorch's ``nearest-exact`` rule (deepbet ignores voxel size: the nets saw such distorted
   cubes in training, so we do the same);
2. intensities clipped to the 0.5/99.5 percentiles of that small cube, z-scored, mapped to the
   ImageNet-like mean/std 0.449/0.226;
3. the box net's brain probability > 0.5, largest component, its bounding box grown by 10% per side;
4. the box crop resampled to ``size``^3 (deepbet: 256), the main net, probability > 0.5 mapped back
   to the crop (nearest), largest 26-connected component, 3D holes filled.

The weights and their cards live in ``napari_lightseg/models/brain/`` (not in the tumour-model
registry that ``models.cards.list_cards`` scans); ``src_models/brain_extraction.py`` makes them.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import overload

import numpy as np
from nibabel.orientations import aff2axcodes, apply_orientation, axcodes2ornt, ornt_transform

from ..arrays import fill_holes, label
from ..io.naming import StudyError
from ..io.nifti import DISPLAY_AXCODES, Geometry
from ..models.cards import CardError, ModelCard, load_card
from ..progress import CancelCallback, ProgressCallback, check_cancel, report

BRAIN_MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "brain"
RAS = ("R", "A", "S")
BOX_NET_SHAPE = (128, 128, 128)
DEFAULT_SIZE = 192  # main-net cube edge (deepbet: 256); chosen in benchmarks/RESULTS_brain_extraction.md
SIZES = (128, 160, 192, 224, 256)  # multiples of 32 (the net downsamples 5 times)
THRESHOLD = 0.5
BOX_MARGIN = 0.1
PERCENTILES = (0.005, 0.995)
PRECISIONS = ("int8", "fp32")
ROLES = ("box", "main")

# --------------------------------------------------------------------------------------------- cards
def brain_card(role: str, precision: str, folder: Path = BRAIN_MODEL_DIR) -> ModelCard:
    """The card of one brain-extraction net (``role`` box|main, ``precision`` int8|fp32), verified."""
    if role not in ROLES or precision not in PRECISIONS:
        raise CardError(f"brain extraction: no {role!r} net in {precision!r} (roles {ROLES}, precisions {PRECISIONS})")
    path = folder / f"brain-{role}-{precision}.json"
    if not path.exists():
        raise CardError(f"{path}: brain-extraction model card is missing")
    card = load_card(path)
    card.verify()
    return card


def list_brain_cards(folder: Path = BRAIN_MODEL_DIR) -> list[ModelCard]:
    """All brain-extraction cards (kept apart from the tumour models), each verified."""
    cards = [load_card(p) for p in sorted(folder.glob("brain-*.json"))]
    for card in cards:
        card.verify()
    return cards


@lru_cache(maxsize=4)
def _session(path: str, threads: int | None):
    """One ONNX Runtime session per weights file, reused across calls (loading costs ~0.1 s)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


@lru_cache(maxsize=8)
def _verified_card(role: str, precision: str, stamp: tuple[int, int]) -> ModelCard:
    """``brain_card`` once per weights-file version (``stamp`` = size, mtime): hashing costs ~20 ms a call."""
    return brain_card(role, precision)


def _net(role: str, precision: str, threads: int | None):
    weights = BRAIN_MODEL_DIR / f"brain-{role}-{precision}.onnx"
    stat = weights.stat() if weights.exists() else None
    card = _verified_card(role, precision, (stat.st_size, stat.st_mtime_ns)) if stat else brain_card(role, precision)
    session = _session(str(card.path), threads)
    input_name, output_name = card.inputs[0], card.outputs[0]

    def run(cube: np.ndarray) -> np.ndarray:
        """(D, H, W) float32 -> brain probability (D, H, W) (the files have one sigmoid output channel)."""
        return session.run([output_name], {input_name: cube[None, None]})[0][0, -1]

    return run


# ------------------------------------------------------------------------------ deepbet's arithmetic
def nearest_exact_indices(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each output index under PyTorch's ``nearest-exact`` (float32, as torch does)."""
    scale = np.float32(n_in) / np.float32(n_out)
    index = np.floor((np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * scale).astype(np.int64)
    return np.minimum(index, n_in - 1)


def resample_nearest(volume: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """``F.interpolate(mode='nearest-exact')`` for a 3D array."""
    index = [nearest_exact_indices(n_in, n_out) for n_in, n_out in zip(volume.shape, shape)]
    return volume[np.ix_(*index)]


def normalize(cube: np.ndarray, low: float, high: float) -> np.ndarray:
    """deepbet's ``utils.normalize``: clip to [low, high] -> [0, 1], z-score (unbiased std), * .226 + .449."""
    x = np.clip((cube.astype(np.float32) - np.float32(low)) / np.float32(high - low), 0, 1)
    std = float(x.std(ddof=1))
    x = (x - np.float32(x.mean())) / np.float32(std if std > 0 else 1.0)
    return (np.float32(0.226) * x + np.float32(0.449)).astype(np.float32)


def intensity_range(small: np.ndarray) -> tuple[float, float]:
    """The 0.5/99.5 percentiles of the 128^3 cube (deepbet takes them there, uses them for both nets)."""
    low, high = np.quantile(small.astype(np.float32), PERCENTILES)
    if high <= low:
        high = low + 1.0
    return float(low), float(high)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component (cc3d's default in deepbet); empty stays empty; of equal largest
    ones, the first in a C-order scan (``arrays.label`` numbers as ``scipy.ndimage.label``)."""
    labels, count = label(mask, 3)
    if count <= 1:
        return labels > 0
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(sizes.argmax())


def box_with_margin(small_mask: np.ndarray, shape: tuple[int, ...], margin: float = BOX_MARGIN,
                    threshold: float = 0.02) -> tuple[slice, slice, slice]:
    """deepbet's ``get_bbox_with_margin``: extent of the rows/columns/slices whose mean exceeds 2%,
    scaled to the full grid, grown by ``margin`` per side (float32 arithmetic as in torch)."""
    bounds = []
    for axis, n in enumerate(shape):
        other = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(small_mask.mean(axis=other, dtype=np.float32) > threshold)
        if present.size == 0:
            raise ValueError("no brain found")
        scale = np.float32(n) / np.float32(small_mask.shape[axis])
        centre = np.float32((present[-1] + 1 + present[0]) / 2) * scale
        size = np.float32(present[-1] + 1 - present[0]) * scale * np.float32(1 + 2 * margin)
        centre, size = np.round(centre), np.round(size)
        lo, hi = int(centre - size / 2), int(centre + size / 2)
        bounds.append(slice(max(0, lo), min(n, hi)))
    return tuple(bounds)  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------ public API
@dataclass
class BrainExtractionResult:
    """The mask and what it took, for the pipeline's timing table."""

    mask: np.ndarray
    seconds: dict[str, float]
    box: tuple[slice, slice, slice]  # in RAS voxel order
    size: int
    precision: str


Orientation = tuple[str, str, str] | np.ndarray | Geometry  # axis codes, a 4x4 affine, or a Geometry


def axis_codes(orientation: Orientation) -> tuple[str, str, str]:
    """Axis codes of an array described by codes, its own 4x4 affine, or a Geometry (display order)."""
    if isinstance(orientation, Geometry):
        return DISPLAY_AXCODES
    if isinstance(orientation, np.ndarray):
        if orientation.shape != (4, 4):
            raise ValueError(f"an affine must be 4x4, got {orientation.shape}")
        return tuple(aff2axcodes(orientation))
    codes = tuple(orientation)
    if len(codes) != 3:
        raise ValueError(f"three axis codes expected, got {codes}")
    return codes


def extract_brain(volume: np.ndarray, orientation: Orientation = DISPLAY_AXCODES, *, model: str = "int8",
                  size: int = DEFAULT_SIZE, threads: int | None = None, source: str = "volume",
                  progress: ProgressCallback | None = None, cancel: CancelCallback | None = None) -> np.ndarray:
    """Brain mask (bool, same shape and voxel order as ``volume``) of a T1-weighted volume.

    ``orientation`` says how the array's axes lie: axis codes (display orientation S,P,L by default),
    the array's own 4x4 affine, or the study's Geometry (meaning the array is in display order). Voxel
    size is not needed: deepbet resamples to fixed cubes whatever the spacing.
    ``model`` int8|fp32 picks the weights, ``size`` the main net's cube edge (multiple of 32).
    Raises StudyError naming ``source`` when no brain is found, ``Cancelled`` on cancel.
    """
    return extract_brain_detailed(volume, orientation, model=model, size=size, threads=threads, source=source,
                                  progress=progress, cancel=cancel).mask


def extract_brain_detailed(volume: np.ndarray, orientation: Orientation = DISPLAY_AXCODES, *,
                           model: str = "int8", size: int = DEFAULT_SIZE, threads: int | None = None,
                           source: str = "volume", progress: ProgressCallback | None = None,
                           cancel: CancelCallback | None = None) -> BrainExtractionResult:
    """``extract_brain`` plus seconds per stage and the box (benchmarks, timing tables)."""
    import time

    if volume.ndim != 3:
        raise StudyError(f"{source}: brain extraction needs a 3D volume, got shape {volume.shape}")
    if size % 32 or size < 64:
        raise ValueError(f"size must be a multiple of 32 (>= 64), got {size}")
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    axcodes = axis_codes(orientation)
    to_ras = ornt_transform(axcodes2ornt(axcodes), axcodes2ornt(RAS))
    back = ornt_transform(axcodes2ornt(RAS), axcodes2ornt(axcodes))
    x = np.nan_to_num(apply_orientation(np.asarray(volume, dtype=np.float32), to_ras))
    if not np.any(x != x.flat[0]):
        raise StudyError(f"{source}: brain extraction found no brain (the volume is constant)")
    report(progress, 0.02, "brain extraction: locating the brain")
    check_cancel(cancel)
    seconds["prepare"] = time.perf_counter() - start
    t = time.perf_counter()
    box_net, main_net = _net("box", model, threads), _net("main", model, threads)
    seconds["load"] = time.perf_counter() - t  # verify + open the sessions: first call only (cached)

    t = time.perf_counter()
    small = resample_nearest(x, BOX_NET_SHAPE)
    low, high = intensity_range(small)
    seconds["prepare"] += time.perf_counter() - t
    t = time.perf_counter()
    small_mask = largest_component(box_net(normalize(small, low, high)) > THRESHOLD)
    seconds["box net"] = time.perf_counter() - t
    try:
        box = box_with_margin(small_mask.astype(np.float32), x.shape)
    except ValueError:
        raise StudyError(f"{source}: brain extraction found no brain (is it a T1-weighted head or brain MRI?)") from None
    check_cancel(cancel)
    report(progress, 0.2, "brain extraction: segmenting the brain")

    t = time.perf_counter()
    crop = x[box]
    cube = normalize(resample_nearest(crop, (size, size, size)), low, high)
    seconds["prepare"] += time.perf_counter() - t
    t = time.perf_counter()
    probability = main_net(cube)
    seconds["main net"] = time.perf_counter() - t
    check_cancel(cancel)
    report(progress, 0.9, "brain extraction: cleaning the mask")

    t = time.perf_counter()
    in_box = resample_nearest(probability > THRESHOLD, crop.shape)  # threshold commutes with nearest
    in_box = fill_holes(largest_component(in_box))
    mask = np.zeros(x.shape, dtype=bool)
    mask[box] = in_box
    mask = np.ascontiguousarray(apply_orientation(mask, back))
    seconds["postprocess"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - start
    report(progress, 1.0, "brain extraction: done")
    return BrainExtractionResult(mask, seconds, box, size, model)


def looks_skull_stripped(images: Mapping[str, np.ndarray] | np.ndarray, spacing: tuple[float, float, float] | None = None,
                         min_zero_fraction: float = 0.4, min_largest_fraction: float = 0.95,
                         brain_ml: tuple[float, float] = (400.0, 2500.0)) -> bool:
    """True when the data look already skull-stripped, as BraTS data are: a large exactly-zero
    background around one connected non-zero region (and, given ``spacing`` in mm, a region of
    brain size; a head whose air the scanner zeroed is 3-5 L). Full-head scans have noisy air."""
    volumes = list(images.values()) if isinstance(images, Mapping) else [images]
    nonzero = np.zeros(volumes[0].shape, dtype=bool)
    for volume in volumes:
        nonzero |= volume != 0
    count = int(nonzero.sum())
    if count == 0 or 1.0 - count / nonzero.size < min_zero_fraction:
        return False
    labels, n = label(nonzero, 1, raster_order=False)  # face neighbours (scipy's default structure); sizes only
    largest = int(np.bincount(labels.ravel())[1:].max()) if n else 0
    if largest < min_largest_fraction * count:
        return False
    if spacing is not None:
        ml = count * float(np.prod(spacing)) / 1000.0
        if not brain_ml[0] <= ml <= brain_ml[1]:
            return False
    return True


@overload
def apply_brain_mask(images: np.ndarray, mask: np.ndarray) -> np.ndarray: ...
@overload
def apply_brain_mask(images: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]: ...
def apply_brain_mask(images: np.ndarray | dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray | dict[str, np.ndarray]:
    """New arrays with every voxel outside ``mask`` set to 0 (the tumour models' convention);
    the inputs are not modified. Accepts one volume, a (C, Z, Y, X) stack, or a dict of volumes."""
    mask = np.asarray(mask, dtype=bool)

    def masked(volume: np.ndarray) -> np.ndarray:
        if volume.shape[-3:] != mask.shape:
            raise ValueError(f"mask shape {mask.shape} does not match volume shape {volume.shape}")
        return np.where(mask, volume, np.zeros((), dtype=volume.dtype))

    if isinstance(images, dict):
        return {name: masked(volume) for name, volume in images.items()}
    return masked(images)


__all__ = ["extract_brain", "extract_brain_detailed", "looks_skull_stripped", "apply_brain_mask",
                      "brain_card", "list_brain_cards", "BrainExtractionResult", "DEFAULT_SIZE"]
