"""Co-registration and resampling (SimpleITK; pure, no Qt); world-space grids are ``io.grids``.

Clinical studies store every sequence on its own grid. The study is shown and segmented on one
*reference* grid (by default T1ce's); every other sequence is brought onto it:

* the same physical grid in another voxel order (RAS vs LPS files, transposed axes) is only
  reoriented: an exact permutation/flip of the array, never interpolated or registered;
* a truly different grid is rigidly registered to the reference (Mattes mutual information,
  multi-resolution, started from the scanner's coordinates: sequences of one session already share
  the patient frame) and resampled linearly onto the reference grid.

Each sequence's transform (reference physical point -> sequence physical point, LPS mm) is kept in
``Study.alignment`` so results go back into every native grid (``labels_to_native``).
Physical space is SimpleITK's LPS millimetres; ``Geometry`` (nibabel) affines are RAS.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..io.grids import array_in_geometry, geometry_from_sitk, same_physical_grid, sitk_from_array
from ..io.naming import SEQUENCES, StudyError
from ..io.nifti import Geometry
from ..io.series import SeriesVolume
from ..io.study import AlignedSeries, Study
from ..progress import CancelCallback, Cancelled, ProgressCallback, check_cancel, report


@dataclass(frozen=True)
class RegistrationSettings:
    """Rigid registration settings; the defaults were chosen by ``benchmarks/bench_registration.py``."""

    levels_mm: tuple[float, ...] = (4.0, 2.0)  # coarse-to-fine voxel size of the pyramid levels
    pyramid: str = "binshrink"  # binshrink: block means, once per level | itk: ITK's Gaussian smoothing + shrink
    sampling_fraction: float = 0.03
    histogram_bins: int = 32
    iterations: int = 100  # per level
    learning_rate: float = 1.0  # first step, about 1 mm (scales from physical shift)
    min_step: float = 1e-3
    initializer: str = "scanner"  # scanner (identity about the reference centre) | geometry | moments
    seed: int = 17


DEFAULT_SETTINGS = RegistrationSettings()


# ------------------------------------------------------------------ registration
def register_rigid(fixed: sitk.Image, moving: sitk.Image, *, settings: RegistrationSettings = DEFAULT_SETTINGS,
                   progress: ProgressCallback | None = None,
                   cancel: CancelCallback | None = None) -> tuple[sitk.Transform, dict[str, Any]]:
    """Rigid transform (fixed physical point -> moving physical point) by Mattes mutual information.

    Starts from the scanner's coordinates (identity about the fixed image's centre): sequences of one
    session share the patient frame, so the answer is a small motion. Coarse-to-fine over block-mean
    shrunk copies (``settings.levels_mm``): shrinking once per level is far cheaper on a CPU than ITK's
    full-resolution Gaussian pyramid, at the same accuracy (benchmarks/RESULTS_registration.md).
    Raises ``Cancelled`` when ``cancel()`` turns true.
    """
    started = time.perf_counter()
    fixed = sitk.Cast(fixed, sitk.sitkFloat32)
    moving = sitk.Cast(moving, sitk.sitkFloat32)
    transform = _initial_transform(fixed, moving, settings.initializer)
    levels = list(settings.levels_mm)
    state: dict[str, Any] = {"cancelled": False, "iterations": 0, "level": 0}
    if settings.pyramid == "itk":
        runs = [(fixed, moving, [max(1, round(mm / min(fixed.GetSpacing()))) for mm in levels], [mm / 2 for mm in levels])]
    else:
        runs = [(_shrink_to(fixed, mm), _shrink_to(moving, mm), [1], [0.0]) for mm in levels]
    learning_rate = settings.learning_rate
    with _one_itk_thread():
        transform, metric, stop = _run_levels(runs, transform, settings, learning_rate, state, len(levels), progress, cancel)
    info = {"metric": metric, "iterations": int(state["iterations"]), "stop": stop,
            "seconds": time.perf_counter() - started}
    return sitk.Euler3DTransform(transform), info


_itk_lock = threading.Lock()
_itk_users = 0
_itk_threads_before = 0


@contextmanager
def _one_itk_thread() -> Iterator[None]:
    """ITK's global default of one thread while any registration runs (registrations may overlap).

    Why: the Mattes metric sums over ITK's threads in whatever order they finish, so with several threads the
    same pair registers to a slightly different transform each time (and on each core count): the same study
    gave masks differing in hundreds of voxels from run to run. The metric takes its thread count from the
    global default when ``Execute`` builds it (``ImageRegistrationMethod.SetNumberOfThreads`` does not reach it).
    ``align_study`` registers the sequences side by side instead. Filters made elsewhere meanwhile run on one
    thread too: slower, never different.
    """
    global _itk_users, _itk_threads_before
    with _itk_lock:
        if _itk_users == 0:
            _itk_threads_before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
        _itk_users += 1
    try:
        yield
    finally:
        with _itk_lock:
            _itk_users -= 1
            if _itk_users == 0:
                sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(_itk_threads_before)


def _run_levels(runs: list, transform: sitk.Euler3DTransform, settings: RegistrationSettings, learning_rate: float,
                state: dict[str, Any], levels: int, progress: ProgressCallback | None,
                cancel: CancelCallback | None) -> tuple[sitk.Euler3DTransform, float, str]:
    """The coarse-to-fine optimisation of ``register_rigid``: (transform, final metric, stop condition)."""
    metric = float("nan")
    stop = ""
    for number, (level_fixed, level_moving, shrink, sigmas) in enumerate(runs):
        check_cancel(cancel)
        state["level"] = number
        method = _method(settings, learning_rate, shrink, sigmas)
        method.SetInitialTransform(transform, inPlace=True)

        def on_iteration(method: sitk.ImageRegistrationMethod = method) -> None:
            state["iterations"] += 1
            if cancel is not None and cancel():
                state["cancelled"] = True
                method.StopRegistration()
            elif progress is not None and state["iterations"] % 10 == 0:
                done = min(method.GetOptimizerIteration() / settings.iterations, 1.0)
                report(progress, (state["level"] + done) / levels, "registering")

        method.AddCommand(sitk.sitkIterationEvent, on_iteration)
        method.Execute(level_fixed, level_moving)
        if state["cancelled"]:
            raise Cancelled("cancelled by the user")
        metric, stop = float(method.GetMetricValue()), method.GetOptimizerStopConditionDescription()
        learning_rate /= 2  # the next, finer level only refines
    return transform, metric, stop


def _method(settings: RegistrationSettings, learning_rate: float, shrink: list[int],
            sigmas: list[float]) -> sitk.ImageRegistrationMethod:
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=settings.histogram_bins)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(settings.sampling_fraction, settings.seed)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=learning_rate, minStep=settings.min_step, numberOfIterations=settings.iterations,
        gradientMagnitudeTolerance=1e-6)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(shrink)
    method.SetSmoothingSigmasPerLevel(sigmas)
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return method


def _shrink_to(image: sitk.Image, voxel_mm: float) -> sitk.Image:
    """Block means down to about ``voxel_mm`` per axis (thick-slice axes are left alone)."""
    factors = [max(1, int(round(voxel_mm / s))) for s in image.GetSpacing()]
    return sitk.BinShrink(image, factors) if max(factors) > 1 else image


def _initial_transform(fixed: sitk.Image, moving: sitk.Image, how: str) -> sitk.Euler3DTransform:
    """scanner: identity about the fixed centre; geometry / moments: ITK's centring initializers (compared)."""
    if how == "scanner":
        transform = sitk.Euler3DTransform()
        size = np.array(fixed.GetSize(), dtype=np.float64)
        transform.SetCenter(fixed.TransformContinuousIndexToPhysicalPoint(tuple((size - 1) / 2)))
        return transform
    mode = {"geometry": sitk.CenteredTransformInitializerFilter.GEOMETRY,
            "moments": sitk.CenteredTransformInitializerFilter.MOMENTS}[how]
    return sitk.Euler3DTransform(sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(), mode))


# ------------------------------------------------------------------ alignment of a study
def _register_all(fixed: sitk.Image, moving: Mapping[str, sitk.Image], settings: RegistrationSettings,
                  numbers: list[int], total: int, progress: ProgressCallback | None,
                  cancel: CancelCallback | None) -> dict[str, tuple[sitk.Transform, dict[str, Any]]]:
    """``register_rigid`` of every moving image to ``fixed``, side by side (each on one ITK thread, so the result
    does not depend on timing or core count); progress is reported as each sequence's share of ``total``."""
    if not moving:
        return {}
    lock = threading.Lock()

    def one(seq: str, number: int) -> tuple[sitk.Transform, dict[str, Any]]:
        def sub_progress(fraction: float, message: str) -> None:
            with lock:  # callbacks arrive from several threads
                report(progress, (number + fraction) / total, f"{seq}: {message}")

        return register_rigid(fixed, moving[seq], settings=settings, progress=sub_progress, cancel=cancel)

    workers = max(1, min(len(moving), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lightseg-register") as pool:
        futures = {seq: pool.submit(one, seq, number) for seq, number in zip(moving, numbers)}
        try:
            return {seq: future.result() for seq, future in futures.items()}  # the first failure or Cancelled
        finally:
            for future in futures.values():
                future.cancel()


def align_study(volumes: Mapping[str, SeriesVolume], reference: str = "t1ce", *, register: bool | None = None,
                geometries: Mapping[str, Geometry] | None = None, name: str | None = None,
                settings: RegistrationSettings = DEFAULT_SETTINGS,
                progress: ProgressCallback | None = None, cancel: CancelCallback | None = None) -> Study:
    """Bring every sequence onto the reference sequence's grid; return a display-oriented ``Study``.

    ``register``: True always registers sequences on another grid, False only resamples them
    through the scanner's coordinates, None (auto) registers exactly those on another grid.
    Sequences on the reference's physical grid are reoriented exactly, never registered.
    ``geometries``: the exact NIfTI geometry of sequences read from NIfTI files (kept for saving);
    others get ``geometry_from_sitk``.
    """
    if not volumes:
        raise StudyError("no sequences to align")
    if reference not in volumes:
        reference = next(s for s in (*SEQUENCES, *volumes) if s in volumes)
    geometries = dict(geometries or {})
    ref_volume = volumes[reference]
    ref_image = ref_volume.image
    ref_geometry = geometries.get(reference) or geometry_from_sitk(ref_image)
    timings = {"register": 0.0, "resample": 0.0}
    images: dict[str, np.ndarray] = {}
    alignment: dict[str, AlignedSeries] = {}
    order = [s for s in SEQUENCES if s in volumes] + [s for s in volumes if s not in SEQUENCES]
    on_grid = {seq for seq in order if seq == reference or same_physical_grid(ref_image, volumes[seq].image)}
    moving = [seq for seq in order if seq not in on_grid]
    t = time.perf_counter()
    registered = _register_all(ref_image, {seq: volumes[seq].image for seq in moving} if register is not False else {},
                               settings, [order.index(seq) for seq in moving], len(order), progress, cancel)
    timings["register"] = time.perf_counter() - t
    for number, seq in enumerate(order):
        check_cancel(cancel)
        volume = volumes[seq]
        native = geometries.get(seq) or geometry_from_sitk(volume.image)
        if seq in on_grid:
            t = time.perf_counter()
            images[seq] = native.to_display(array_in_geometry(volume.image).astype(np.float32, copy=False))
            timings["resample"] += time.perf_counter() - t
            alignment[seq] = AlignedSeries(volume, sitk.Euler3DTransform(), native, registered=False,
                                           reoriented=seq != reference and not native.same_grid(ref_geometry))
            continue
        transform, info = registered.get(seq, (sitk.Euler3DTransform(), {}))
        t = time.perf_counter()
        resampled = sitk.Resample(sitk.Cast(volume.image, sitk.sitkFloat32), ref_image, transform, sitk.sitkLinear, 0.0,
                                  sitk.sitkFloat32)
        images[seq] = ref_geometry.to_display(array_in_geometry(resampled))
        timings["resample"] += time.perf_counter() - t
        alignment[seq] = AlignedSeries(volume, transform, native, registered=register is not False,
                                       reoriented=False, metric=info.get("metric"),
                                       info={k: v for k, v in info.items() if k != "settings"})
        report(progress, (number + 1) / len(order), f"{seq}: aligned")
    sources = {seq: volumes[seq].source for seq in order}
    return Study(name or Path(ref_volume.source).name, images, ref_geometry, sources=sources,
                 alignment=alignment, reference=reference, timings_s=timings)


# ------------------------------------------------------------------ results back into native grids
def labels_to_native(labels_display: np.ndarray, study: Study, sequence: str) -> sitk.Image:
    """Labels on the study's (reference) grid, display order -> a uint8 SimpleITK image on ``sequence``'s own
    grid, by nearest neighbour through that sequence's transform."""
    if sequence not in study.alignment:
        raise StudyError(f"{study.name}: no alignment record for sequence {sequence!r} "
                         f"(have {', '.join(study.alignment) or 'none'})")
    labels_display = np.asarray(labels_display)
    if tuple(labels_display.shape) != study.geometry.display_shape:
        raise StudyError(f"{study.name}: labels shape {labels_display.shape} does not match the study grid "
                         f"{study.geometry.display_shape}")
    on_reference = sitk_from_array(study.geometry.to_disk(labels_display.astype(np.uint8)), study.geometry)
    record = study.alignment[sequence]
    # the recorded transform maps reference -> sequence points; resampling onto the sequence's grid needs
    # sequence -> reference (identity for reoriented sequences: their voxel centres coincide, nothing moves)
    inverse = record.transform.GetInverse()
    return sitk.Resample(on_reference, record.volume.image, inverse, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def labels_onto_study(classes: np.ndarray, geometry: Geometry, study: Study) -> np.ndarray:
    """Labels stored on some grid (array in that file's order) -> the study's grid, display order, by nearest
    neighbour. A grid that is one sequence's own grid goes through that sequence's transform; any other grid
    is trusted to share the reference's patient frame (the scanner's coordinates)."""
    image = sitk_from_array(np.asarray(classes, dtype=np.uint8), geometry)
    reference = _reference_image(study)
    transform: sitk.Transform = sitk.Euler3DTransform()
    for record in study.alignment.values():
        if same_physical_grid(record.volume.image, image):
            transform = record.transform
            break
    out = sitk.Resample(image, reference, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return study.geometry.to_display(array_in_geometry(out))


def _reference_image(study: Study) -> sitk.Image:
    record = study.alignment.get(study.reference or "")
    if record is not None:
        return record.volume.image
    return sitk_from_array(np.zeros(study.geometry.disk_shape, np.uint8), study.geometry)
