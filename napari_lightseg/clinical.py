"""The clinical path: whatever a radiologist has -> one study on the reference grid -> results in every native grid.

Input is a DICOM study folder (series found and identified from headers, ``io.dicom``) or NIfTI files
on any grids (``load_nifti_study``). Sequences on other grids are rigidly registered to the reference
sequence (default T1ce) and resampled onto its grid (``preprocess.registration``); a full-head study
is brain-extracted on that grid (``preprocess.brain_extraction``; skull-stripped input is detected and
left alone). Stage seconds land in ``Study.timings_s`` and become columns of the run report.

Results are made on the reference grid and saved on the grid of any source series: NIfTI (with the
label-names sidecar) or DICOM-SEG referencing that series.
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .io import DEFAULT_CONVENTION, Segmentation, StudyError, from_internal, load_study
from .io.grids import same_physical_grid
from .io.labels import label_sidecar, sidecar_path
from .io.naming import StudyFiles, discover
from .io.nifti import Geometry, save_nifti_like
from .io.outputs import OutputPlan, source_file
from .io.study import Study, grid_sequence, load_labels, off_grid, one_grid_study, read_label_file, read_sequences
from .progress import CancelCallback, ProgressCallback, check_cancel, report

BRAIN_MODES = ("auto", "force", "skip")
MAX_BRAIN_ML = 2500.0  # larger than any brain: a head (zeroed air) or a body part
DEFAULT_REFERENCE = "t1ce"
DICOM_SUFFIXES = (".dcm",)
NIFTI_SUFFIXES = (".nii", ".nii.gz")


def dicom_folder(inputs: Sequence[str | Path]) -> Path | None:
    """The DICOM study folder among ``inputs`` (one folder holding DICOM and no NIfTI), else None."""
    from .io import is_nifti
    from .io.dicom import contains_dicom

    if len(inputs) != 1 or not Path(inputs[0]).is_dir():
        return None
    folder = Path(inputs[0])
    try:
        if any(is_nifti(p) for p in folder.iterdir()):
            return None
    except OSError:
        return None
    return folder if contains_dicom(folder) else None


def open_study(inputs: Sequence[str | Path] | str | Path, *, sequences: Mapping[str, str] | None = None,
               reference: str = DEFAULT_REFERENCE, brain: str = "auto", register: bool | None = None,
               with_labels: bool = False, progress: ProgressCallback | None = None,
               cancel: CancelCallback | None = None) -> Study:
    """Read, align and (if needed) brain-extract a study; ``Study.timings_s`` holds the stage seconds.

    ``sequences`` (DICOM only): sequence -> SeriesInstanceUID or SeriesNumber, overriding the header rules.
    ``brain``: auto (extract unless the images look skull-stripped), force, or skip.
    """
    if brain not in BRAIN_MODES:
        raise StudyError(f"brain extraction must be one of {', '.join(BRAIN_MODES)}, not {brain!r}")
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    if not items:
        raise StudyError("no input given")
    started = time.perf_counter()
    folder = dicom_folder(items)
    if folder is not None:
        from .io.dicom import load_dicom_series_volumes
        from .preprocess.registration import align_study

        report(progress, 0.0, "reading DICOM series")
        volumes = load_dicom_series_volumes(folder, overrides=dict(sequences or {}))
        read_s = time.perf_counter() - started
        check_cancel(cancel)
        study = align_study(volumes, reference, register=register, name=folder.name,
                            progress=_scaled(progress, 0.05, 0.6), cancel=cancel)
        study.timings_s["read"] = read_s
    else:
        if sequences:
            raise StudyError(f"{items[0]}: --sequence chooses among DICOM series; name NIfTI files by sequence instead")
        study = load_nifti_study(items[0] if len(items) == 1 else items, with_labels=with_labels, reference=reference,
                                 register=register, progress=_scaled(progress, 0.0, 0.6), cancel=cancel)
    check_cancel(cancel)
    strip_skull(study, brain, progress=_scaled(progress, 0.6, 1.0), cancel=cancel)
    return study


def load_nifti_study(paths: str | Path | list[str | Path] | StudyFiles, *, with_labels: bool = True,
                     reference: str | None = None, register: bool | None = None, progress: ProgressCallback | None = None,
                     cancel: CancelCallback | None = None) -> Study:
    """NIfTI sequences on any grids as one study; ``io.load_study`` when they share one.

    Sequences on other grids are registered to the ``reference`` sequence (default T1ce) and resampled
    onto its grid (``preprocess.registration.align_study``), through the same path as DICOM series.
    Without registration the study's grid is the first sequence's (FLAIR's) unless ``reference`` names another.
    """
    started = time.perf_counter()
    files = paths if isinstance(paths, StudyFiles) else discover(paths)
    if files.multichannel is not None:  # one 4D file: one grid
        return load_study(files, with_labels, reference=reference)
    data, grids = read_sequences(files)
    chosen = grid_sequence(files, reference)
    if not off_grid(grids, chosen):
        study = one_grid_study(files, data, grids, chosen, named=bool(reference))
        if with_labels and files.segmentation is not None:
            study.labels, study.convention, _ = load_labels(files.segmentation, study.geometry)
    else:
        study = _aligned_study(files, data, grids, reference or DEFAULT_REFERENCE, register, progress, cancel)
        if with_labels and files.segmentation is not None:
            study.labels, study.convention = _aligned_labels(files.segmentation, study)
    study.timings_s["read"] = time.perf_counter() - started - sum(study.timings_s.values())
    return study


def _aligned_study(files: StudyFiles, data: dict[str, np.ndarray], grids: dict[str, Geometry], reference: str,
                   register: bool | None, progress: ProgressCallback | None, cancel: CancelCallback | None) -> Study:
    """NIfTI sequences on different grids through the same path as DICOM series: ``align_study``."""
    from .io.grids import sitk_from_array
    from .io.series import SeriesVolume
    from .preprocess.registration import align_study

    volumes = {}
    for seq, path in files.sequences.items():
        image = sitk_from_array(data[seq], grids[seq])
        volumes[seq] = SeriesVolume(image, str(path), description=Path(path).name, sequence=seq)
    study = align_study(volumes, reference, register=register, geometries=grids, name=files.name,
                        progress=progress, cancel=cancel)
    study.files = files
    return study


def _aligned_labels(path: Path, study: Study) -> tuple[np.ndarray, str | None]:
    """Ground truth of an aligned study: it may lie on any sequence's grid (nearest neighbour onto the study's)."""
    from .preprocess.registration import labels_onto_study

    classes, convention, own = read_label_file(path)
    if same_physical_grid(own, study.geometry):
        return own.to_display(classes), convention
    return labels_onto_study(classes, own, study), convention


def strip_skull(study: Study, mode: str = "auto", *, progress: ProgressCallback | None = None,
                cancel: CancelCallback | None = None) -> np.ndarray | None:
    """Brain-extract the study in place (voxels outside the brain set to 0, as the tumour models were
    trained); returns the mask, or None when skipped. T1 is used (deepbet's input), else T1ce."""
    from .preprocess.brain_extraction import apply_brain_mask, extract_brain_detailed

    if mode == "skip":
        study.notes.append("brain extraction skipped (--brain skip)")
        return None
    if mode == "auto" and not needs_brain_extraction(study):
        return None
    channel = next((s for s in ("t1", "t1ce", "flair", "t2") if s in study.images), None)
    if channel is None:
        raise StudyError(f"{study.name}: no sequence to extract the brain from")
    result = extract_brain_detailed(study.images[channel], study.geometry, source=study.sources.get(channel, channel),
                                    progress=progress, cancel=cancel)
    study.images = apply_brain_mask(study.images, result.mask)
    study.timings_s["extract"] = result.seconds.get("total", 0.0)
    study.notes.append(f"brain extracted from {channel.upper()} ({result.precision}, {result.size}^3 main net, "
                       f"{float(result.mask.sum()) * float(np.prod(study.geometry.spacing)) / 1000.0:.0f} mL)")
    return result.mask


def needs_brain_extraction(study: Study) -> bool:
    """Auto mode's rule: extract unless the study already looks skull-stripped -- one connected non-zero region
    in a constant background (BraTS-style zeros, or any constant offset: ``quality`` subtracts it later) that is
    no larger than a brain (``MAX_BRAIN_ML``; a head whose air the scanner zeroed is 3-5 L)."""
    from .preprocess.brain_extraction import looks_skull_stripped
    from .preprocess.quality import background_offset

    every_other = (slice(None, None, 2),) * 3  # a decision, not a mask: 1/8 of the voxels decide it as well, 8x faster
    shifted = {}
    for seq, volume in study.images.items():
        offset = background_offset(volume)
        shifted[seq] = volume[every_other] - offset if offset else volume[every_other]
    foreground = np.zeros(next(iter(shifted.values())).shape, dtype=bool)
    for volume in shifted.values():
        foreground |= volume != 0
    if not looks_skull_stripped(foreground):  # the non-zero region of a bool mask is the mask: computed once
        return True
    return 8 * float(foreground.sum()) * float(np.prod(study.geometry.spacing)) / 1000.0 > MAX_BRAIN_ML


def _scaled(progress: ProgressCallback | None, lo: float, hi: float) -> ProgressCallback | None:
    """A progress callback mapped into [lo, hi] of the caller's."""
    if progress is None:
        return None
    return lambda fraction, message: progress(lo + (hi - lo) * fraction, message)


# ------------------------------------------------------------------------------------------- outputs
def output_kind(path: str | Path) -> str:
    """``dicom-seg`` or ``nifti`` from the file name; anything else is refused."""
    name = str(path).lower()
    if name.endswith(DICOM_SUFFIXES):
        return "dicom-seg"
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    raise StudyError(f"{path}: output must end in .nii, .nii.gz (NIfTI) or .dcm (DICOM-SEG)")


def plan_mask_outputs(plan: OutputPlan, out: str | Path) -> None:
    """Validate a mask output (and its sidecar) before any work."""
    plan.add(out, "mask")
    if output_kind(out) == "nifti":
        plan.add(sidecar_path(out), "label sidecar")


def save_mask(plan: OutputPlan, out: str | Path, segmentation: Segmentation, study: Study, *, grid: str | None = None,
              convention: str | None = None) -> Path:
    """Write a result (a segmentation on the study grid) into a planned output.

    ``grid``: the sequence whose own grid the file is on (default: the study's reference grid).
    ``convention`` (the user's choice) overrides the segmentation's own; the default applies when neither says.
    NIfTI gets the label-names sidecar; DICOM-SEG references that sequence's DICOM series.
    """
    out = Path(out)
    labels, model_name = segmentation.labels, segmentation.model
    convention = convention or segmentation.convention or DEFAULT_CONVENTION
    sequence = grid or study.reference or next(iter(study.images))
    if grid is not None and grid not in study.images:
        raise StudyError(f"{out}: no sequence {grid!r} in {study.name} (have {', '.join(study.images)})")
    if labels.shape != study.shape or not same_physical_grid(segmentation.geometry, study.geometry):
        # its voxels would be written onto the wrong anatomy: refuse instead
        raise StudyError(f"{out}: the segmentation lies on another grid ({labels.shape}) than {study.name} "
                         f"({study.shape}); save it with the study it was made on")
    if output_kind(out) == "dicom-seg":
        import SimpleITK as sitk

        from .io.dicom_seg import write_dicom_seg
        from .preprocess.registration import labels_to_native

        record = study.alignment.get(sequence)
        if record is None or not record.volume.files:
            raise StudyError(f"{out}: DICOM-SEG needs a DICOM source series; {study.name} was not read from DICOM")
        native = sitk.GetArrayFromImage(labels_to_native(labels, study, sequence))
        plan.write(out, lambda temp: write_dicom_seg(temp, native, record.volume, model_name=model_name, overwrite=True))
        return out
    geometry, data = _native_nifti(labels, study, sequence, convention)
    save_nifti_like(out, data, geometry, plan=plan)
    source = record.volume.source if (record := study.alignment.get(sequence)) is not None else study.sources.get(sequence)
    sidecar = label_sidecar(convention, grid=sequence, source=source, model=model_name, study=study.name)
    plan.write(sidecar_path(out), lambda temp: temp.write_text(json.dumps(sidecar, indent=1) + "\n"))
    return out


def save_mask_file(out: str | Path, segmentation: Segmentation, study: Study, *, grid: str | None = None,
                   convention: str | None = None, overwrite: bool = False, inputs: Sequence[str | Path] = ()) -> Path:
    """``save_mask`` with a plan of its own: validated, written atomically, never onto ``inputs`` or the
    study's source files."""
    protected = [*inputs, *study.sources.values(), *(f for r in study.alignment.values() for f in r.volume.files)]
    with OutputPlan([source_file(p) for p in protected], overwrite=overwrite) as plan:
        plan_mask_outputs(plan, out)
        save_mask(plan, out, segmentation, study, grid=grid, convention=convention)
        plan.commit()
    return Path(out)


def _native_nifti(labels: np.ndarray, study: Study, sequence: str, convention: str) -> tuple[Any, np.ndarray]:
    """(geometry, file-ordered values) of a result on ``sequence``'s own grid: exact reorientation when
    that grid is the study's physical grid, nearest neighbour through its transform otherwise."""
    record = study.alignment.get(sequence)
    if record is None:  # the study's own grid (NIfTI on one grid): no SimpleITK needed
        return study.geometry, study.geometry.to_disk(from_internal(labels, convention), "F")
    from .io.grids import array_in_geometry
    from .preprocess.registration import labels_to_native

    native = record.geometry
    if same_physical_grid(native, study.geometry):
        return native, native.to_disk(from_internal(labels, convention), "F")  # same voxel centres: same display array
    return native, from_internal(array_in_geometry(labels_to_native(labels, study, sequence)), convention)

