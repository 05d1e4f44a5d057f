"""The compare widget's work, as plain functions (no Qt): the slow parts a worker thread runs, and the
layer data for masks loaded from files and for the disagreement map.

The worker functions take ``progress``/``cancel`` like ``engine.run`` and hand finished model runs out through
``deliver`` (not ``yield``: napari's generator workers swallow a ``Cancelled`` and never finish).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from . import engine
from .compare import compare_labels, disagreement, segmentation_name
from .io import Geometry, StudyError, load_labels
from .layers import METADATA_KEY, LayerData, labels_layer, spatial_kwargs
from .models import ModelCard

DISAGREEMENT = "disagreement"


def run_models(study, jobs: list[tuple[ModelCard, str]], progress: Callable[[float, str], None],
                cancel: Callable[[], bool], deliver: Callable[[engine.Result], None]) -> int:
    """Run the models one after another (one worker, so they never compete for the CPU); each result
    is delivered as soon as it is there. A cancel raises ``Cancelled`` from inside ``engine.run``."""
    for i, (card, backend) in enumerate(jobs):
        def step(fraction: float, message: str, i: int = i) -> None:
            progress((i + fraction) / len(jobs), f"{i + 1}/{len(jobs)} {message}")

        deliver(engine.run(study, card, backend or None, progress=step, cancel=cancel))
    return len(jobs)


def compare_masks(reference_name: str, reference: np.ndarray, masks: dict[str, np.ndarray], spacing: tuple[float, ...],
             extra: dict[str, dict], progress: Callable[[float, str], None], cancel: Callable[[], bool]
             ) -> tuple[list[dict], np.ndarray]:
    """Background job: score the masks against the reference and map where they disagree."""
    rows = compare_labels(reference, masks, spacing, reference_name, extra)
    return rows, disagreement([reference, *masks.values()])


def masks_from_files(paths: Iterable[str | Path], geometry: Geometry, study: str = "") -> tuple[list[LayerData], list[str]]:
    """Labels layers of segmentation files read onto the study's grid (any label convention), named after
    their files; and one message per file that could not be read (the others still load)."""
    layers, errors = [], []
    for path in paths:
        try:
            classes, convention, _ = load_labels(path, geometry)
        except (StudyError, OSError, ValueError) as exc:
            errors.append(str(exc))
            continue
        layers.append(labels_layer(classes, geometry, segmentation_name(path), study=study, convention=convention,
                                   extra={"source": str(path)}))
    return layers, errors


def disagreement_layer(counts: np.ndarray, geometry: Geometry | None, scale: Any, n_masks: int) -> LayerData:
    """How many masks differ from the majority per voxel: black (all agree) to bright, added over the image."""
    spatial = spatial_kwargs(geometry) if geometry is not None else {"scale": scale}
    kwargs = dict(name=DISAGREEMENT, colormap="inferno", blending="additive", contrast_limits=(0, max(n_masks - 1, 1)),
                  metadata={METADATA_KEY: {"role": DISAGREEMENT, "geometry": geometry}}, **spatial)
    return counts, kwargs, "image"
