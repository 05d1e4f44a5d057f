"""Slice-wise CNN inference shared by the engine and training: 2.5D context, test-time flips, output heads.

A model sees axial slices (N, C, H, W). With ``context`` k each slice is stacked with its k neighbours
on each side (edges repeat the end slice), offset-major: channels are [all sequences at z-k, ...,
all sequences at z+k]. The head decides how outputs become labels: ``classes`` = softmax over
background/NCR/ED/ET (argmax), ``regions`` = sigmoid WT/TC/ET channels (overlapping, as nnU-Net does for
BraTS) thresholded at 0.5 and nested: ET inside TC inside WT. Test-time flips average the
probabilities of the flipped inputs (flipped back); "lr" flips the x axis, "ap" the y axis.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .io.labels import CLASSES
from .progress import CancelCallback, ProgressCallback, check_cancel, report

HEADS = ("classes", "regions")
FLIP_AXES = {"lr": -1, "ap": -2}
# The flip sets offered everywhere (CLI --flips, release, benchmarks): named option -> flips averaged
FLIP_OPTIONS: dict[str, list[str]] = {"none": [], "lr": ["lr"], "lr+ap": ["lr", "ap"]}
NCR, ED, ET = (next(c.value for c in CLASSES if c.name == name) for name in ("NCR", "ED", "ET"))

Model = Callable[[np.ndarray], np.ndarray]


def context_indices(depth: int, z0: int, z1: int, context: int) -> np.ndarray:
    """(z1 - z0, 2k + 1) slice indices of each slice's neighbourhood, clamped at the volume's ends."""
    offsets = np.arange(-context, context + 1)
    return np.clip(np.arange(z0, z1)[:, None] + offsets[None, :], 0, depth - 1)


def stack_context(slices: np.ndarray, z0: int, z1: int, context: int) -> np.ndarray:
    """Model input for slices z0..z1 of ``slices`` (Z, C, H, W): (n, C * (2k + 1), H, W), offset-major."""
    if context == 0:
        return np.ascontiguousarray(slices[z0:z1])
    index = context_indices(slices.shape[0], z0, z1, context)
    stacked = slices[index]  # (n, 2k+1, C, H, W)
    return np.ascontiguousarray(stacked.reshape(stacked.shape[0], -1, *stacked.shape[3:]))


def probabilities(outputs: np.ndarray, head: str) -> np.ndarray:
    """Softmax over classes or sigmoid per region, float32."""
    outputs = outputs.astype(np.float32, copy=False)
    if head == "regions":
        return 1.0 / (1.0 + np.exp(-outputs))
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def labels_from_regions(wt: np.ndarray, tc: np.ndarray, et: np.ndarray) -> np.ndarray:
    """Nested regions to classes: ET where ET; NCR where TC but not ET; ED where WT only."""
    labels = np.zeros(wt.shape, dtype=np.uint8)
    labels[wt] = ED
    labels[tc & wt] = NCR
    labels[et & wt] = ET
    return labels


def decode(outputs: np.ndarray, head: str, *, are_probabilities: bool = False) -> np.ndarray:
    """(n, K, H, W) logits or probabilities -> (n, H, W) uint8 internal labels."""
    if head == "regions":
        cut = 0.5 if are_probabilities else 0.0  # sigmoid(x) > 0.5  <=>  x > 0
        above = outputs > cut
        return labels_from_regions(above[:, 0], above[:, 1], above[:, 2])
    return outputs.argmax(1).astype(np.uint8)


def predict_batch(model: Model, batch: np.ndarray, head: str, flips: Sequence[str] = ()) -> np.ndarray:
    """Labels of one input batch; with flips, the mean probability over the original and each flip."""
    if not flips:
        return decode(model(batch), head)
    total = probabilities(model(batch), head)
    for name in flips:
        axis = FLIP_AXES[name]
        total += np.flip(probabilities(model(np.ascontiguousarray(np.flip(batch, axis))), head), axis)
    return decode(total / (len(flips) + 1), head, are_probabilities=True)


def predict_volume(model: Model, image: np.ndarray, *, head: str = "classes", context: int = 0,
                   flips: Sequence[str] = (), batch: int = 16, progress: ProgressCallback | None = None,
                   cancel: CancelCallback | None = None, workers: int = 1) -> np.ndarray:
    """(z, y, x) labels of a preprocessed (C, z, y, x) volume, ``batch`` axial slices at a time; slices
    with no brain in their whole context are skipped (background). ``workers`` > 1 runs that many batches
    at once from threads (the model must allow concurrent calls, as an ONNX Runtime session does); the
    labels do not depend on it."""
    unknown = [f for f in flips if f not in FLIP_AXES]
    if head not in HEADS or unknown:
        raise ValueError(f"unknown head {head!r} or flips {unknown}; heads {HEADS}, flips {sorted(FLIP_AXES)}")
    depth = image.shape[1]
    slices = image.transpose(1, 0, 2, 3)  # a view: stack_context copies one batch at a time, not the whole volume
    out = np.zeros((depth, *image.shape[2:]), dtype=np.uint8)
    brain = np.any(slices != 0, axis=(1, 2, 3))
    spans = [(z0, min(z0 + batch, depth)) for z0 in range(0, depth, batch)]
    spans = [(z0, z1) for z0, z1 in spans if brain[context_indices(depth, z0, z1, context)].any()]

    def labels_of(z0: int, z1: int) -> np.ndarray:
        check_cancel(cancel)
        return predict_batch(model, stack_context(slices, z0, z1, context), head, flips)

    if workers <= 1 or len(spans) <= 1:
        for z0, z1 in spans:
            out[z0:z1] = labels_of(z0, z1)
            report(progress, z1 / depth, f"slice {z1}/{depth}")
        check_cancel(cancel)
        return out
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lightseg-inference") as pool:
        futures = [pool.submit(labels_of, z0, z1) for z0, z1 in spans]
        try:
            for (z0, z1), future in zip(spans, futures):
                out[z0:z1] = future.result()  # Cancelled raised in a worker comes out here
                report(progress, z1 / depth, f"slice {z1}/{depth}")
        finally:
            for future in futures:  # on cancel or error: batches not started yet never start
                future.cancel()
    check_cancel(cancel)
    return out
