"""The slow parts of the compare widget, as plain functions a worker thread runs (no Qt).

They take ``progress``/``cancel`` like ``engine.run`` and hand finished model runs out through
``deliver`` (not ``yield``: napari's generator workers swallow a ``Cancelled`` and never finish).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import engine
from .compare import compare_labels, disagreement
from .models import ModelCard


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
    rows = compare_labels(reference, masks, spacing, reference_name, extra)
    return rows, disagreement([reference, *masks.values()])
