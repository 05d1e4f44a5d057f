"""Input checks before inference and a sanity check after it: never a silent, confident mask.

The models were trained on skull-stripped BraTS volumes: background exactly 0, a brain region that
fills 10-25 % of the volume, thousands of distinct intensities per sequence. Inputs that break those
assumptions either get a normalisation that makes the result equal to the clean study's, a refusal,
or a warning note (``Result.report.notes``: the CLI prints them and writes them into ``--report``).

Rules, per sequence the model reads (``check_inputs``), in this order:

| finding | rule | action |
|---|---|---|
| NaN / infinite voxels | any | refuse (``StudyError``) |
| blank or constant | every voxel has one value | refuse |
| non-zero background | the most common value on the volume's six faces is not 0 and covers >= ``BACKGROUND_BORDER_FRACTION`` of them | subtract it (exact for integer data), note |
| absurd scale | largest magnitude > ``MAX_MAGNITUDE`` or < ``MIN_MAGNITUDE`` | rescale by a power of two (exact: z-scores unchanged), note |
| constant in the brain | one value inside the brain region (any sequence non-zero) | refuse |
| mostly empty | zero in > ``MAX_EMPTY_FRACTION`` of the brain region | warning note |
| few intensities | <= ``MIN_DISTINCT_VALUES`` distinct values in the brain region | warning note (a mask, not an MRI?) |
| identical sequences | two sequences hold the same array | warning note |
| not skull-stripped | brain region > ``MAX_BRAIN_FRACTION`` of the volume | warning note |

After inference (``check_result``): a whole tumour larger than ``MAX_TUMOUR_FRACTION`` of the brain
region adds a warning note.

Clean BraTS data trigger none of these, and then ``check_inputs`` returns the very same arrays, so
preprocessing and masks are bit-identical to a run without the checks.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ..io import SEQUENCE_TITLES, Study, StudyError

BACKGROUND_BORDER_FRACTION = 0.5
MAX_MAGNITUDE = 2.0 ** 20  # ~1e6: float32 squares stay finite far beyond, but no MRI scanner writes more
MIN_MAGNITUDE = 2.0 ** -10
TARGET_EXPONENT = 10  # rescaled intensities reach at most 2**10
MAX_EMPTY_FRACTION = 0.5
MIN_DISTINCT_VALUES = 10
MAX_BRAIN_FRACTION = 0.6
MAX_TUMOUR_FRACTION = 0.4
_DISTINCT_SAMPLE = 50_000


def _title(sequence: str) -> str:
    return SEQUENCE_TITLES.get(sequence, sequence)


def border_values(volume: np.ndarray) -> np.ndarray:
    """The voxels on the six faces of a 3D volume (corners repeat; harmless for a mode)."""
    return np.concatenate([volume[0].ravel(), volume[-1].ravel(), volume[:, 0].ravel(), volume[:, -1].ravel(),
                           volume[:, :, 0].ravel(), volume[:, :, -1].ravel()])


def background_offset(volume: np.ndarray) -> float:
    """The background value of a volume: the faces' dominant value, else 0 (clean, skull-stripped data)."""
    border = border_values(volume)
    if 2 * np.count_nonzero(border) < border.size:  # zeros are the strict majority, so the mode: no sort needed
        return 0.0
    values, counts = np.unique(border, return_counts=True)
    best = int(counts.argmax())
    if counts[best] >= BACKGROUND_BORDER_FRACTION * border.size:
        return float(values[best])
    return 0.0


def _power_of_two_scale(peak: float) -> float:
    """A power of two that brings ``peak`` into [2**(TARGET_EXPONENT-1), 2**TARGET_EXPONENT)."""
    return float(2.0 ** (TARGET_EXPONENT - int(np.ceil(np.log2(peak)))))


class CheckedInputs(NamedTuple):
    """What ``inspect_inputs`` found: the (possibly fixed) study, the notes, and the brain region of the
    sequences it checked (``preprocess.brain_mask`` of them), for the engine to reuse rather than recompute."""

    study: Study
    notes: list[str]
    brain: np.ndarray


def check_inputs(study: Study, sequences: Sequence[str]) -> tuple[Study, list[str]]:
    """Refuse unusable sequences, fix what can be fixed exactly, and describe the rest.

    Returns the study (the same object when nothing was changed) and the notes to report.
    """
    checked = inspect_inputs(study, sequences)
    return checked.study, checked.notes


def inspect_inputs(study: Study, sequences: Sequence[str]) -> CheckedInputs:
    """``check_inputs``, also returning the brain region (any checked sequence non-zero, after the fixes):
    equal to ``preprocess.brain_mask`` of those sequences, so ``prepare`` and ``check_result`` can take it."""
    name = study.name or "study"
    used = [s for s in sequences if s in study.images]
    images = dict(study.images)
    notes: list[str] = []
    offsets: dict[str, float] = {}
    peaks: dict[str, float] = {}
    for seq in used:
        volume = images[seq]
        low, high = float(volume.min()), float(volume.max())
        if not (np.isfinite(low) and np.isfinite(high)):  # min/max propagate NaN and reach +-inf: all finite otherwise
            finite = np.isfinite(volume)
            raise StudyError(f"{_source(study, seq)}: {int(volume.size - np.count_nonzero(finite))} voxels are NaN or infinite")
        if low == high:
            what = "blank (every voxel is 0)" if low == 0 else f"constant (every voxel is {low:g})"
            raise StudyError(f"{_source(study, seq)}: {_title(seq)} is {what}; no image to segment")
        offset = background_offset(volume)
        if offset != 0:
            volume = volume - np.float32(offset)
            low, high = low - offset, high - offset
            offsets[seq] = offset
        peak = max(abs(low), abs(high))
        if peak > MAX_MAGNITUDE or peak < MIN_MAGNITUDE:
            volume = volume * np.float32(_power_of_two_scale(peak))
            peaks[seq] = peak
        images[seq] = volume
    if offsets:
        values = ", ".join(sorted({f"{v:g}" for v in offsets.values()}))
        notes.append(f"{_titles(offsets)}: background was {values}, not 0; treated as background (subtracted)")
    if peaks:
        notes.append(f"{_titles(peaks)}: intensities reach {max(peaks.values()):.3g}; rescaled by a power of two "
                     "(exact; z-scores do not change)")
    brain = np.zeros(images[used[0]].shape if used else study.shape, dtype=bool)
    nonzero_voxels: dict[str, int] = {}
    scratch = np.empty(brain.shape, dtype=bool)
    for seq in used:  # preprocess.brain_mask, counting each sequence's non-zero voxels on the way
        np.not_equal(images[seq], 0, out=scratch)
        nonzero_voxels[seq] = int(np.count_nonzero(scratch))
        np.logical_or(brain, scratch, out=brain)
    del scratch
    brain_voxels = int(np.count_nonzero(brain))
    step = max(brain.size // (4 * _DISTINCT_SAMPLE), 1)
    sampled_brain = brain.ravel()[::step]
    for seq in used:
        sample = images[seq].ravel()[::step][sampled_brain]
        distinct = np.unique(sample).size if sample.size else 0
        if distinct <= 1:
            raise StudyError(f"{_source(study, seq)}: {_title(seq)} holds one value inside the brain region; no image to segment")
        empty = 1.0 - nonzero_voxels[seq] / max(brain_voxels, 1)
        if empty > MAX_EMPTY_FRACTION:
            notes.append(f"WARNING {_title(seq)} is 0 in {empty:.0%} of the brain region (the other sequences are not): "
                         "partial coverage or a wrong file? The result may be wrong")
        if distinct <= MIN_DISTINCT_VALUES:
            notes.append(f"WARNING {_title(seq)} has only {distinct} distinct intensities in the brain region: "
                         "a mask or label map, not an MRI? The result may be wrong")
    for i, first in enumerate(used):
        for second in used[i + 1:]:
            if _identical(images[first], images[second]):
                notes.append(f"WARNING {_title(first)} and {_title(second)} are identical: the same file given twice? "
                             "The result may be wrong")
    fraction = brain_voxels / max(brain.size, 1)
    if fraction > MAX_BRAIN_FRACTION:
        notes.append(f"WARNING the non-zero region fills {fraction:.0%} of {name}'s volume: the models expect "
                     "skull-stripped images with a zero background. The result may be wrong")
    if all(images[s] is study.images[s] for s in used):
        return CheckedInputs(study, notes, brain)
    return CheckedInputs(dataclasses.replace(study, images=images), notes, brain)


def _identical(first: np.ndarray, second: np.ndarray) -> bool:
    """Equal arrays; a strided sample first, so different sequences cost almost nothing."""
    if first.shape != second.shape:
        return False
    if not np.array_equal(first.ravel()[::101], second.ravel()[::101]):
        return False
    return bool(np.array_equal(first, second))


def check_result(labels: np.ndarray, study: Study, sequences: Sequence[str], brain: np.ndarray | None = None) -> list[str]:
    """Warning notes about an implausible result (a tumour filling much of the brain).

    ``brain``: the brain region of ``sequences`` when the caller has it (``inspect_inputs``), else computed."""
    if brain is None:
        from . import brain_mask

        used = [study.images[s] for s in sequences if s in study.images]
        brain = brain_mask(used) if used else np.zeros(study.shape, dtype=bool)
    brain_voxels = int(np.count_nonzero(brain))
    tumour_voxels = int(np.count_nonzero(labels))
    if brain_voxels and tumour_voxels > MAX_TUMOUR_FRACTION * brain_voxels:
        return [f"WARNING the whole tumour covers {tumour_voxels / brain_voxels:.0%} of the brain region "
                f"(more than {MAX_TUMOUR_FRACTION:.0%}): implausible; check the input sequences"]
    return []


def _titles(sequences: dict[str, float]) -> str:
    return ", ".join(_title(s) for s in sequences)


def _source(study: Study, sequence: str) -> str:
    """The file a sequence came from (for messages), else the study and sequence names."""
    return study.sources.get(sequence) or f"{study.name or 'study'} {_title(sequence)}"
