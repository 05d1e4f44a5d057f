"""Segmentation engine: ``run(study, card, backend) -> Result``, pure Python/NumPy, no Qt.

CNNs: the training preprocessing (``preprocess.prepare``: brain crop + z-score), axial slices in
batches through the chosen backend, argmax, labels put back into the full grid, then the documented
post-processing: tumour components smaller than ``MIN_COMPONENT_ML`` are dropped (isolated false
positives; real lesions are larger). PCNN models run through ``napari_lightseg.pcnn``.
Every result also lists detections: one 3D box per connected tumour component.
"""
from __future__ import annotations

import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backends import get_backend, parse_backend
from .energy import EnergyMeter
from .io import Geometry, Study, load_study
from .io.study import study_convention
from .metrics import class_volumes_ml
from .models import ModelCard
from .postprocess import MIN_COMPONENT_ML, clean_and_find, find_components
from .preprocess import prepare, quality, uncrop
from .progress import CancelCallback, ProgressCallback, check_cancel, report
from .types import Detection, RunReport, Segmentation

__all__ = ["DEFAULT_BATCH", "MIN_COMPONENT_ML", "Detection", "Result", "find_components", "run", "segment_paths"]

DEFAULT_BATCH = 16


@dataclass
class Result:
    """A finished run: the labels on their grid, the study's label convention (to save in it), and the run's
    ``report`` (model, backend, timings, volumes, detections, notes, energy): the one record of what was measured."""

    labels: np.ndarray  # internal classes, display orientation
    geometry: Geometry
    report: RunReport
    study_convention: str | None = None

    @property
    def segmentation(self) -> Segmentation:
        """The labels with their grid, label convention and model: what a writer needs."""
        return Segmentation(self.labels, self.geometry, self.study_convention, self.report.model)

    def summary_line(self) -> str:
        """One line for a status bar or the terminal: model, backend, seconds, whole-tumour volume."""
        r = self.report
        return (f"{r.model} on {r.backend}/{r.provider}: total {r.timings_s['total']:.2f} s "
                f"(inference {r.timings_s['inference']:.2f} s), WT {r.volumes_ml['WT']:.1f} mL")


def run(study: Study, card: ModelCard, backend: str | None = None, *, threads: int | None = None,
        progress: ProgressCallback | None = None, cancel: CancelCallback | None = None,
        postprocess: bool = True, batch: int = DEFAULT_BATCH, load_seconds: float = 0.0,
        flips: Sequence[str] | None = None) -> Result:
    """Segment a loaded study with a model card on a backend (``name`` or ``name:provider``);
    ``flips`` overrides the card's test-time flips (``[]`` = none, e.g. ``["lr"]``)."""
    started = time.perf_counter()
    meter = EnergyMeter().start()
    backend_name, provider = parse_backend(backend, card)
    timings = {"load": load_seconds, **study.timings_s}  # load = read + register + extract (the study's stages)
    notes: list[str] = list(study.notes)
    check_cancel(cancel)
    study, input_notes, brain = quality.inspect_inputs(study, card.sequences)  # refuses, fixes exactly, or warns
    notes += input_notes  # brain: the card's sequences' brain region, computed once for prepare and check_result
    if card.kind == "pcnn":
        from . import pcnn

        report(progress, 0.0, f"{card.name}: PCNN")
        t = time.perf_counter()
        labels = pcnn.segment(study, card.parameters, progress=progress, cancel=cancel)
        timings.update(preprocess=0.0, inference=time.perf_counter() - t)
        actual_backend, actual_provider, slices = "numpy", "cpu", study.shape[0]
    else:
        missing = [s for s in card.sequences if s not in study.images]
        if missing:
            raise ValueError(f"{card.name} needs {', '.join(card.sequences)}; {study.name} lacks {', '.join(missing)}")
        report(progress, 0.0, f"{card.name}: loading model")
        inference = get_backend(backend_name).load(card, provider, threads)
        notes += inference.notes
        t = time.perf_counter()
        image, crop = prepare([study.images[s] for s in card.sequences], brain)
        timings["preprocess"] = time.perf_counter() - t
        t = time.perf_counter()
        cropped = _infer_slices(inference.run, image, batch, progress, cancel, card, flips, inference.parallel)
        timings["inference"] = time.perf_counter() - t
        labels = uncrop(cropped, crop)
        actual_backend, actual_provider, slices = inference.backend, inference.provider, image.shape[1]
    check_cancel(cancel)
    t = time.perf_counter()
    spacing = study.geometry.spacing
    if postprocess:  # remove_small_components(per_class=False) + find_components from one labelling
        labels, detections = clean_and_find(labels, MIN_COMPONENT_ML, spacing)
    else:
        detections = find_components(labels, spacing)
    volumes = class_volumes_ml(labels, spacing)
    notes += quality.check_result(labels, study, card.sequences, brain)
    timings["postprocess"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started + load_seconds
    report(progress, 1.0, "done")
    usage = meter.stop()
    run_report = RunReport(study.name, card.name, actual_backend, actual_provider, timings, volumes, slices, detections,
                           _peak_rss_mb(), notes, cpu_s=usage.cpu_s, energy_j=usage.energy_j, energy_method=usage.method)
    return Result(labels, study.geometry, run_report, study.convention)


def segment_paths(paths: str | Path | list[str | Path], card: ModelCard, backend: str | None = None, **kwargs) -> Result:
    """Load a study from files (timed) and run a model on it."""
    t = time.perf_counter()
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    study = load_study(items[0] if len(items) == 1 else items, with_labels=False)
    if study.files is not None and study.files.segmentation is not None:  # save in the study's own convention
        study.convention = study_convention(study)
    return run(study, card, backend, load_seconds=time.perf_counter() - t, **kwargs)


def _infer_slices(model, image: np.ndarray, batch: int, progress: ProgressCallback | None,
                  cancel: CancelCallback | None, card: ModelCard | None = None,
                  flips: Sequence[str] | None = None, workers: int = 1) -> np.ndarray:
    """Labels (z, y, x) of a preprocessed (C, z, y, x) volume: the card's head, 2.5D context and
    test-time flips (``flips`` None = the card's default) through ``napari_lightseg.inference``;
    ``workers`` batches at once (``Inference.parallel``)."""
    from . import inference

    head = card.head if card else "classes"
    context = card.context_slices if card else 0
    chosen = (card.test_time_flips if card else []) if flips is None else flips
    return inference.predict_volume(model, image, head=head, context=context, flips=chosen, batch=batch,
                                    progress=progress, cancel=cancel, workers=workers)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
