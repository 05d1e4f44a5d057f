"""What the viewer needs of the clinical path, without Qt: the series table, series overrides, and the
worker's job (open the study properly, then segment it).

Why a module of its own: the reader shows a DICOM study fast (scanner coordinates only), and the segment
widget later re-opens it with registration and brain extraction; both describe the same series table,
and the widget's Qt code stays a thin layer over these functions (unit-testable without a viewer).
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .io import SEQUENCE_TITLES, SEQUENCES, StudyError
from .io.study import Study
from .progress import CancelCallback, ProgressCallback

SERIES_COLUMNS = (("number", "#"), ("description", "description"), ("size", "size"), ("role", "role"))
SERIES_TIP_KEYS = ("protocol", "modality", "tr_ms", "te_ms", "ti_ms", "contrast", "files", "reason")  # shown on hover
# layer metadata keys (under metadata["lightseg"]) a DICOM study's image layers carry
DICOM_FOLDER_KEY = "dicom_folder"
INPUTS_KEY = "clinical_inputs"  # what ``clinical.open_study`` re-opens: [DICOM folder] or the NIfTI files
SERIES_TABLE_KEY = "series_table"
ASSIGNED_KEY = "series_assigned"
OPEN_SHARE = 0.5  # of the progress bar: opening (read, register, extract); the rest is the model


def series_role(row: Mapping[str, Any], assigned: Mapping[str, str]) -> str:
    """What a series is used as: a sequence title, "not used", or why it cannot be used."""
    for sequence, uid in assigned.items():
        if uid == row.get("series_uid"):
            return SEQUENCE_TITLES.get(sequence, sequence)
    if not row.get("usable", True):
        return f"unusable: {row.get('reason', '')}"
    guess = row.get("sequence")
    return f"not used (looks like {SEQUENCE_TITLES.get(guess, guess)})" if guess else "not used"


def series_rows(table: Iterable[Mapping[str, Any]], assigned: Mapping[str, str]) -> list[dict[str, str]]:
    """Rows of the series table as shown: number, description, size, a short role (fits a dock), and the
    details a tooltip gives (spacing, the full role with the reason, the acquisition headers)."""
    rows = []
    for row in table:
        number = row.get("number")
        role = series_role(row, assigned)
        spacing = f"{row.get('spacing_mm', '?')} mm"
        details = {"role": role, "spacing": spacing,
                   **{k: v for k, v in row.items() if k in SERIES_TIP_KEYS and v not in (None, "")}}
        rows.append({"number": "" if number is None else str(number),
                     "description": str(row.get("description") or row.get("protocol") or row.get("series_uid", "")),
                     "size": str(row.get("size", "")), "spacing": spacing,
                     "role": role.split(" (")[0].split(":")[0], "role_detail": role,
                     "tooltip": "\n".join(f"{k}: {v}" for k, v in details.items())})
    return rows


def series_choices(table: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(label, SeriesInstanceUID) of the series a sequence may be assigned to: usable ones, and derived
    images (a reformat the user may choose on purpose, as ``io.dicom`` allows)."""
    choices = []
    for row in table:
        if row.get("usable", True) or str(row.get("reason", "")).startswith("derived"):
            number = row.get("number")
            label = f"#{number} " if number is not None else ""
            choices.append((f"{label}{row.get('description') or row.get('protocol') or ''}".strip(), str(row["series_uid"])))
    return choices


def check_overrides(overrides: Mapping[str, str], table: Sequence[Mapping[str, Any]] = ()) -> dict[str, str]:
    """The overrides (sequence -> SeriesInstanceUID) if one series serves one sequence at most."""
    by_uid: dict[str, list[str]] = {}
    for sequence, uid in overrides.items():
        if sequence not in SEQUENCES:
            raise StudyError(f"unknown sequence {sequence!r}; use {', '.join(SEQUENCES)}")
        by_uid.setdefault(uid, []).append(SEQUENCE_TITLES[sequence])
    for uid, sequences in by_uid.items():
        if len(sequences) > 1:
            label = next((f"#{r.get('number')} {r.get('description', '')}".strip() for r in table
                          if r.get("series_uid") == uid), uid)
            raise StudyError(f"series {label} is chosen for {' and '.join(sequences)}; give each sequence its own series")
    return dict(overrides)


def clinical_source(metadata: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The clinical study behind the chosen sequence layers (their plugin metadata), if they all come from
    the same one (a DICOM folder, or NIfTI files on different grids); else None (a study on one grid,
    or layers of different studies)."""
    metas = list(metadata)
    inputs = {tuple(m.get(INPUTS_KEY) or ()) for m in metas}
    if not metas or len(inputs) != 1 or () in inputs:
        return None
    return dict(metas[0])


def nifti_series_table(study: Study) -> list[dict[str, Any]]:
    """The series table of NIfTI files on different grids: one row per file (its name, size, spacing)."""
    rows = []
    for sequence, record in study.alignment.items():
        volume = record.volume
        rows.append({"number": None, "description": Path(volume.source).name, "size": "x".join(map(str, volume.size)),
                     "spacing_mm": "x".join(f"{v:.3g}" for v in volume.image.GetSpacing()), "sequence": sequence,
                     "usable": True, "reason": "", "series_uid": volume.source})
    return rows


def open_and_segment(inputs: str | Path | Sequence[str | Path], card, backend: str | None = None, *,
                     sequences: Mapping[str, str] | None = None, brain: str = "auto", threads: int | None = None,
                     progress: ProgressCallback | None = None, cancel: CancelCallback | None = None,
                     ) -> tuple[Study, Any]:
    """The widget's worker job: ``clinical.open_study`` (registration, brain extraction) then ``engine.run``.

    Returns (study, result); the result's total includes the opening (``load_seconds``), and its timings
    carry the study's stages (read, register, resample, extract).
    """
    from . import clinical, engine

    started = time.perf_counter()
    study = clinical.open_study(inputs, sequences=dict(sequences or {}), brain=brain,
                                progress=_part(progress, 0.0, OPEN_SHARE), cancel=cancel)
    result = engine.run(study, card, backend, threads=threads, progress=_part(progress, OPEN_SHARE, 1.0), cancel=cancel,
                        load_seconds=time.perf_counter() - started)
    return study, result


def _part(progress: ProgressCallback | None, lo: float, hi: float) -> ProgressCallback | None:
    if progress is None:
        return None
    return lambda fraction, message: progress(lo + (hi - lo) * fraction, message)
