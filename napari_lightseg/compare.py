"""Side-by-side comparison of segmentations against a reference: Dice / HD95 / volumes per BraTS region.

Pure numpy (no Qt): the CLI's ``compare`` command and the comparison widget share it.
"""
from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .io import REGIONS, StudyError, load_labels
from .io.outputs import OutputPlan, write_atomically
from .metrics import region_scores

COLUMNS: tuple[str, ...] = (
    "segmentation", "reference",
    *(f"dice_{r}" for r in REGIONS), *(f"hd95_{r}" for r in REGIONS), *(f"volume_{r}_ml" for r in REGIONS),
)


def compare_labels(reference: np.ndarray, segmentations: Mapping[str, np.ndarray],
                   spacing: tuple[float, ...] = (1.0, 1.0, 1.0), reference_name: str = "reference",
                   extra: Mapping[str, Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per segmentation (internal classes, same grid as ``reference``), keys in ``COLUMNS`` order.

    Volumes are the segmentation's own. ``extra`` adds keys (e.g. run time) to the row of the
    segmentation with that name; they come after the standard columns and never reach the CSV.
    """
    reference = np.asarray(reference)
    rows = []
    for name, seg in segmentations.items():
        seg = np.asarray(seg)
        if seg.shape != reference.shape:
            raise ValueError(f"{name}: shape {seg.shape} differs from the reference's {reference.shape}")
        scores = region_scores(seg, reference, spacing)
        row: dict[str, Any] = {"segmentation": name, "reference": reference_name}
        row.update((column, scores[column]) for column in COLUMNS[2:])
        row.update((extra or {}).get(name, {}))
        rows.append(row)
    return rows


def segmentation_name(path: str | Path) -> str:
    """File name without .nii / .nii.gz: the name a segmentation goes by in tables and layers."""
    name = Path(path).name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def compare_files(reference_path: str | Path, segmentation_paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Compare segmentation files with a reference file (either label convention in each file).

    All files must share the reference's grid; a mismatch is a StudyError naming the file.
    """
    reference, _, geometry = load_labels(reference_path)
    segmentations: dict[str, np.ndarray] = {}
    for path in segmentation_paths:
        classes, _, own = load_labels(path)
        if not own.same_grid(geometry):
            raise StudyError(f"{path}: grid differs from the reference {Path(reference_path).name} "
                             f"({own.describe_difference(geometry)})")
        name = segmentation_name(path)
        if name in segmentations:
            raise StudyError(f"{path}: a segmentation named {name!r} was already given; rename one of them")
        segmentations[name] = classes
    return compare_labels(reference, segmentations, geometry.spacing, segmentation_name(reference_path))


def _cell(value: Any) -> Any:
    """Floats as Python writes them (``inf`` for an empty-vs-non-empty HD95); everything else unchanged."""
    return repr(float(value)) if isinstance(value, (float, np.floating)) else value


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | Path, *, plan: OutputPlan | None = None,
              inputs: Iterable[str | Path | None] = (), overwrite: bool = True) -> Path:
    """Write the rows with exactly the ``COLUMNS`` header (extra keys are left out).

    Atomic (temp file, then rename) and never onto one of ``inputs``; with ``plan`` the CSV joins the
    caller's outputs and is renamed when the caller commits. ``overwrite`` defaults to True for the
    widget, whose Save dialog has already asked; the CLI passes its own plan.
    """
    path = Path(path)

    def write(temp: Path) -> None:
        with temp.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            for row in rows:
                writer.writerow([_cell(row[column]) for column in COLUMNS])

    if plan is not None:
        plan.write(path, write, "CSV")
        return path
    return write_atomically(path, write, inputs=inputs, overwrite=overwrite, kind="CSV")


def disagreement(segmentations: Sequence[np.ndarray]) -> np.ndarray:
    """Per voxel, how many segmentations differ from the majority label (0 where all agree).

    Ties do not matter: the count is the number of masks minus the largest group that agrees.
    """
    if not segmentations:
        raise ValueError("disagreement: no segmentations given")
    stack = [np.asarray(s) for s in segmentations]
    shapes = {s.shape for s in stack}
    if len(shapes) != 1:
        raise ValueError(f"disagreement: segmentations differ in shape {sorted(shapes)}")
    if len(stack) > 255:
        raise ValueError("disagreement: at most 255 segmentations")
    largest_group = np.zeros(stack[0].shape, dtype=np.uint8)
    for value in np.unique(np.concatenate([np.unique(s) for s in stack])):
        agreeing = np.zeros(stack[0].shape, dtype=np.uint8)
        for s in stack:
            agreeing += s == value
        np.maximum(largest_group, agreeing, out=largest_group)
    return (len(stack) - largest_group).astype(np.uint8)


def run_names(pairs: Sequence[tuple[str, str]]) -> list[str]:
    """Layer names for (model, backend) runs: the model's name, plus the backend where a model runs twice."""
    counts: dict[str, int] = {}
    for model, _ in pairs:
        counts[model] = counts.get(model, 0) + 1
    return [model if counts[model] == 1 else f"{model} ({backend or 'default'})" for model, backend in pairs]


def interleave_for_grid(masks: Sequence[str], helper_of: Mapping[str, str]) -> list[str]:
    """Bottom-to-top layer order for napari's grid with stride 2: each mask right above its own image copy.

    napari 0.9 groups layers ``index // stride`` into viewboxes, so pairs must start at index 0.
    """
    order: list[str] = []
    for mask in dict.fromkeys(masks):  # first occurrence only
        order += [helper_of[mask], mask]
    return order
