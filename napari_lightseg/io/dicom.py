"""DICOM input: find the series in a study folder, tell which is FLAIR/T1/T1ce/T2, read them.

A radiologist's study is a folder (nested to any depth) of DICOM series, each sequence on its
own grid. ``find_dicom_series`` groups files by SeriesInstanceUID from headers alone and marks
series no model can use (SEG/SR objects, localizers, mixed orientations, several volumes in one
series, derived images); ``identify_sequences`` picks one series per sequence with the rule table
below; ``read_series`` reads pixels with SimpleITK/GDCM (true geometry, GDCM's slice order,
rescale slope/intercept applied) into a ``SeriesVolume``. An enhanced multi-frame object (one
file) is read with highdicom, which sorts its frames by position (GDCM keeps stored order).

Sequence rule table (``SEQUENCE_RULES``, the single source of truth; first matching rule wins).
Text is SeriesDescription | ProtocolName | SequenceName, upper-cased with ``_-./`` read as spaces.
"contrast" means a pre-contrast marker is absent and a contrast marker (``+C``, ``C+``, POST, GAD,
GD, CE, T1C, CONTRAST, KM) is in the text or ContrastBolusAgent is filled in (headers only count
for T1: scanners often keep the agent in every later series).

====  ==========  ===================================================  =============================
 #    sequence    condition                                            why
====  ==========  ===================================================  =============================
 1    (none)      DWI/ADC/DTI/EPI/perfusion/SWI/T2*/angio/MRS/fMRI/     not a structural sequence
                  calibration keyword
 2    t1ce        T1 FLAIR keyword, contrast                           GE's T1-weighted FLAIR is T1
 3    t1          T1 FLAIR keyword                                     GE's T1-weighted FLAIR is T1
 4    flair       FLAIR / DARK FLUID / T2F keyword                     fluid-suppressed T2
 5    t1ce        T1 keyword (T1, T1W, MPRAGE, SPGR, BRAVO, TFE, VIBE) T1 with contrast
                  + contrast
 6    t1          T1 keyword                                           T1 without contrast
 7    t2          T2 keyword (T2, T2W)                                 T2 (FLAIR, T2* handled above)
 8    (none)      ScanningSequence EP (echo planar), no keyword above  diffusion/perfusion/fMRI
 9    t1ce        contrast keyword in text, TR <= 1000 ms              short-TR post-contrast
 10   flair       InversionTime 1500-3500 ms, TR >= 4000 ms            fluid-nulling inversion (header)
 11   t1ce        InversionTime 600-1300 ms, TR <= 3000 ms, contrast   IR-prepared T1 (MPRAGE-like)
 12   t1          InversionTime 600-1300 ms, TR <= 3000 ms             IR-prepared T1 (MPRAGE-like)
 13   t1ce        TR <= 1000 ms, TE <= 30 ms, contrast                 short TR/TE: T1 weighting
 14   t1          TR <= 1000 ms, TE <= 30 ms                           short TR/TE: T1 weighting
 15   t2          TR >= 2000 ms, TE >= 70 ms, no inversion             long TR/TE: T2 weighting
====  ==========  ===================================================  =============================

The matched rule is recorded in the series' ``notes``. Two candidates for one sequence, or none,
is a ``StudyError`` listing the series; ``overrides`` (sequence -> SeriesInstanceUID or
SeriesNumber; CLI ``--sequence flair=UID_OR_NUMBER``) settle it.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .naming import SEQUENCE_TITLES, SEQUENCES, StudyError
from .series import SeriesVolume

# Header fields read when grouping (reading only these keeps a 5000-file study fast).
_HEADER_TAGS = [
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription",
    "ProtocolName", "SequenceName", "ScanningSequence", "Modality", "ImageType", "Rows", "Columns", "PixelSpacing", "SliceThickness",
    "ImagePositionPatient", "ImageOrientationPatient", "RepetitionTime", "EchoTime", "InversionTime",
    "ContrastBolusAgent", "ContrastBolusRoute", "NumberOfFrames", "MediaStorageSOPClassUID", "PatientID",
]
IMAGE_MODALITIES = {"MR", "CT", "PT", "OT"}
MIN_SLICES = 10  # fewer slices: a localizer/scout or a partial acquisition
_JUNK_NAMES = {"dicomdir", ".ds_store", "thumbs.db", "desktop.ini", "lockfile", "version"}
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"


@dataclass
class SeriesInfo:
    """One DICOM series as seen from its headers (no pixels): what a series table shows."""

    series_uid: str
    series_number: int | None
    description: str
    protocol: str
    sequence_name: str
    modality: str
    image_type: tuple[str, ...]
    files: tuple[str, ...]  # as found on disk (unsorted); ``read_series`` returns them in slice order
    size: tuple[int, int, int]  # columns, rows, distinct slice positions (x, y, z)
    spacing: tuple[float, float, float]  # column, row, slice spacing in mm (slice: from positions)
    study_uid: str = ""
    patient_id: str = ""
    repetition_time: float | None = None  # ms
    echo_time: float | None = None
    inversion_time: float | None = None
    contrast_agent: str = ""  # ContrastBolusAgent / ContrastBolusRoute, when filled in
    scanning_sequence: tuple[str, ...] = ()  # ScanningSequence: SE, IR, GR, EP, RM
    usable: bool = True
    reason: str = ""  # why not usable
    sequence: str | None = None  # identified role
    notes: list[str] = field(default_factory=list)

    @property
    def folder(self) -> str:
        """The deepest folder holding all the series' files."""
        return os.path.commonpath([str(Path(f).parent) for f in self.files]) if self.files else ""

    def describe(self) -> str:
        """Compact line for tables and messages: number, description, size."""
        number = f"#{self.series_number} " if self.series_number is not None else ""
        name = self.description or self.protocol or self.series_uid
        size = "x".join(str(v) for v in self.size)
        return f"{number}'{name}' {self.modality} {size}"

    def as_row(self) -> dict[str, Any]:
        """The series as a table row (widget table, CLI listing, JSON report)."""
        return {
            "number": self.series_number, "description": self.description, "protocol": self.protocol,
            "modality": self.modality, "size": "x".join(str(v) for v in self.size),
            "spacing_mm": "x".join(f"{v:.3g}" for v in self.spacing), "image_type": "\\".join(self.image_type),
            "tr_ms": self.repetition_time, "te_ms": self.echo_time, "ti_ms": self.inversion_time,
            "contrast": self.contrast_agent, "sequence": self.sequence, "usable": self.usable,
            "reason": self.reason or "; ".join(self.notes), "files": len(self.files), "series_uid": self.series_uid,
        }

    def text(self) -> str:
        """What the rule table's keywords are searched in."""
        raw = " | ".join(t for t in (self.description, self.protocol, self.sequence_name) if t)
        return re.sub(r"[_\-./\\]+", " ", raw.upper())


# ------------------------------------------------------------------------------------ rule table
_T1 = r"(?:^|[^A-Z]|3D|\bS)T1(?!\d)|MPRAGE|MP ?RAGE|\bSPGR|\bFSPGR|BRAVO|\bTFE\b|\bVIBE\b"  # sT1W (Philips), 3DT1
_T2 = r"(?:^|[^A-Z]|3D|\bS)T2(?:W|\b)"
_CONTRAST = r"\+ ?C\b|\bC ?\+|\+ ?GD|\bPOST(?!ERIOR)|\bGAD|\bGADO|\bGD\b|\bCE\b|T1 ?CE\b|\bT1C\b|\bT1 ?GD|CONTRAST|\bKM\b"
_PRE_CONTRAST = r"\bPRE\b|\bPRE ?(C|GD|GAD|CONTRAST)|NATIVE?\b|\bNON ?CONTRAST|\bW ?O\b|WITHOUT|\bOHNE\b"
_NOT_STRUCTURAL = (r"\bDWI|DIFFUSION|\bADC\b|\bTRACE\b|\bDTI\b|\bPERF|\bDSC\b|\bDCE\b|\bSWI|\bSWAN|T2 ?\*|T2 ?STAR|\bT2 ?FFE\b|ANGIO|\bTOF\b|\bMRA\b|SPECTRO|\bMRS\b|\bBOLD|\bFMRI|\bASL\b|\bMIP\b"
                   r"|\bDIFF|\bEP2D|\bEPI\b|CALIBRATION|\bASSET\b|SENSE ?REF|PRESCAN")


@dataclass(frozen=True)
class SequenceRule:
    """A row of the rule table: every condition given must hold; ``sequence`` None rejects the series."""

    sequence: str | None
    why: str
    text: str | None = None  # regex that must occur in SeriesInfo.text()
    scanning: str | None = None  # regex that must occur in ScanningSequence (e.g. EP, IR, SE, GR)
    contrast: bool | None = None  # contrast given (True) / required absent (False) / not considered (None)
    contrast_headers: bool = True  # whether ContrastBolusAgent counts as contrast evidence
    tr_ms: tuple[float, float] | None = None
    te_ms: tuple[float, float] | None = None
    ti_ms: tuple[float, float] | None = None  # inversion time range; (0, 0) means: no inversion


SEQUENCE_RULES: tuple[SequenceRule, ...] = (
    SequenceRule(None, "not a structural sequence (diffusion, EPI, perfusion, SWI/T2*, angio, spectroscopy, fMRI, calibration)",
                 text=_NOT_STRUCTURAL),
    SequenceRule("t1ce", "T1 FLAIR keyword with contrast (T1-weighted inversion recovery)", text=r"T1 ?FLAIR", contrast=True),
    SequenceRule("t1", "T1 FLAIR keyword (T1-weighted inversion recovery)", text=r"T1 ?FLAIR"),
    SequenceRule("flair", "FLAIR / dark-fluid keyword", text=r"FLAIR|DARK ?FLUID|\bT2F\b"),
    SequenceRule("t1ce", "T1 keyword with contrast", text=_T1, contrast=True),
    SequenceRule("t1", "T1 keyword without contrast", text=_T1),
    SequenceRule("t2", "T2 keyword", text=_T2),
    SequenceRule(None, "echo-planar acquisition without a structural keyword (diffusion, perfusion, fMRI)", scanning=r"\bEP\b"),
    SequenceRule("t1ce", "contrast keyword and short TR", text=_CONTRAST, contrast=True, contrast_headers=False,
                 tr_ms=(0.0, 1000.0)),
    SequenceRule("flair", "InversionTime 1500-3500 ms with long TR (fluid nulling)", ti_ms=(1500.0, 3500.0),
                 tr_ms=(4000.0, float("inf"))),
    SequenceRule("t1ce", "InversionTime 600-1300 ms, TR <= 3000 ms (IR-prepared T1) with contrast",
                 ti_ms=(600.0, 1300.0), tr_ms=(0.0, 3000.0), contrast=True),
    SequenceRule("t1", "InversionTime 600-1300 ms, TR <= 3000 ms (IR-prepared T1)", ti_ms=(600.0, 1300.0), tr_ms=(0.0, 3000.0)),
    SequenceRule("t1ce", "TR <= 1000 ms and TE <= 30 ms (T1 weighting) with contrast", tr_ms=(0.0, 1000.0),
                 te_ms=(0.0, 30.0), contrast=True),
    SequenceRule("t1", "TR <= 1000 ms and TE <= 30 ms (T1 weighting)", tr_ms=(0.0, 1000.0), te_ms=(0.0, 30.0)),
    SequenceRule("t2", "TR >= 2000 ms and TE >= 70 ms without inversion (T2 weighting)", tr_ms=(2000.0, float("inf")),
                 te_ms=(70.0, float("inf")), ti_ms=(0.0, 0.0)),
)


def _contrast_evidence(info: SeriesInfo, use_headers: bool) -> tuple[bool, str]:
    text = info.text()
    if re.search(_PRE_CONTRAST, text):
        return False, "pre-contrast marker"
    match = re.search(_CONTRAST, text)
    if match:
        return True, f"contrast marker {match.group(0).strip()!r}"
    if use_headers and info.contrast_agent:
        return True, f"ContrastBolusAgent {info.contrast_agent!r}"
    return False, "no contrast marker"


def _in_range(value: float | None, bounds: tuple[float, float] | None) -> bool:
    if bounds is None:
        return True
    if bounds == (0.0, 0.0):  # "absent"
        return value is None or value == 0
    return value is not None and bounds[0] <= value <= bounds[1]


def classify_series(info: SeriesInfo) -> tuple[str | None, str]:
    """The sequence a series' headers announce (None: not one of ours) and the rule's reason."""
    text = info.text()
    for number, rule in enumerate(SEQUENCE_RULES, start=1):
        if rule.text is not None and not re.search(rule.text, text):
            continue
        if rule.scanning is not None and not re.search(rule.scanning, " ".join(info.scanning_sequence)):
            continue
        if not (_in_range(info.repetition_time, rule.tr_ms) and _in_range(info.echo_time, rule.te_ms)
                and _in_range(info.inversion_time, rule.ti_ms)):
            continue
        detail = ""
        if rule.contrast is not None:
            given, detail = _contrast_evidence(info, rule.contrast_headers)
            if given != rule.contrast:
                continue
            detail = f"; {detail}"
        role = SEQUENCE_TITLES.get(rule.sequence, "") if rule.sequence else "not used"
        return rule.sequence, f"rule {number} -> {role}: {rule.why}{detail}"
    return None, "no rule matched (no sequence keyword, TR/TE/TI inconclusive)"


# ------------------------------------------------------------------------------------ discovery
def _is_candidate_file(path: Path) -> bool:
    name = path.name
    return not (name.startswith(".") or name.startswith("._") or name.lower() in _JUNK_NAMES)


def _text(ds: Any, keyword: str) -> str:
    value = ds.get(keyword, "")
    return str(value).strip() if value is not None else ""


def _number(ds: Any, keyword: str) -> float | None:
    value = ds.get(keyword)
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _read_header(path: Path) -> Any | None:
    """The header of a DICOM file, or None for anything else (never raises for a non-DICOM file)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
    except (InvalidDicomError, OSError, ValueError, TypeError, AttributeError, EOFError, KeyError):
        return None
    meta_class = str(getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", ""))
    if meta_class == _DICOMDIR_CLASS or "SeriesInstanceUID" not in ds:
        return None
    return ds


def _functional_group_item(frame: Any, shared: Any, sequence: str, keyword: str) -> list[float] | None:
    """A per-frame geometry value of an enhanced multi-frame object (per-frame group first, then shared)."""
    for group in (frame, shared):
        if group is not None and sequence in group and len(group[sequence].value) and keyword in group[sequence][0]:
            value = group[sequence][0][keyword].value
            if value is None or value == "":
                return None
            values = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
            return [float(v) for v in values]
    return None


def frame_planes(ds: Any) -> list[tuple[list[float] | None, list[float] | None]]:
    """(ImagePositionPatient, ImageOrientationPatient) of every frame of an enhanced multi-frame dataset."""
    shared = ds.SharedFunctionalGroupsSequence[0] if ds.get("SharedFunctionalGroupsSequence") else None
    return [
        (_functional_group_item(frame, shared, "PlanePositionSequence", "ImagePositionPatient"),
         _functional_group_item(frame, shared, "PlaneOrientationSequence", "ImageOrientationPatient"))
        for frame in ds.get("PerFrameFunctionalGroupsSequence", [])
    ]


def _enhanced_header(path: Path) -> tuple[Any, list[float], dict[str, float | None]]:
    """Full header of an enhanced object, its pixel spacing and TR/TE/TI (kept in functional groups)."""
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True)
    shared = ds.SharedFunctionalGroupsSequence[0] if ds.get("SharedFunctionalGroupsSequence") else None
    frame = ds.PerFrameFunctionalGroupsSequence[0] if ds.get("PerFrameFunctionalGroupsSequence") else None
    spacing = _functional_group_item(frame, shared, "PixelMeasuresSequence", "PixelSpacing") or [0.0, 0.0]
    timing = {
        "RepetitionTime": _functional_group_item(frame, shared, "MRTimingAndRelatedParametersSequence", "RepetitionTime"),
        "EchoTime": _functional_group_item(frame, shared, "MREchoSequence", "EffectiveEchoTime"),
        "InversionTime": _functional_group_item(frame, shared, "MRModifierSequence", "InversionTimes"),
    }
    return ds, spacing, {k: (v[0] if v else None) for k, v in timing.items()}


def _summarize(uid: str, headers: list[tuple[Path, Any]]) -> SeriesInfo:
    """Build a SeriesInfo from one series' headers, deciding whether a model can use it."""
    first = headers[0][1]
    image_type = tuple(str(v).upper() for v in (first.get("ImageType") or ()))
    number = first.get("SeriesNumber")
    n_frames = int(_number(first, "NumberOfFrames") or 1)
    multiframe = n_frames > 1 and len(headers) == 1
    planes: list[tuple[list[float] | None, list[float] | None]]
    timing = {k: _number(first, k) for k in ("RepetitionTime", "EchoTime", "InversionTime")}
    pixel_spacing = [float(v) for v in (first.get("PixelSpacing") or (0.0, 0.0))]
    if multiframe:  # one enhanced object: geometry and timing live in its functional groups
        full, pixel_spacing, enhanced_timing = _enhanced_header(headers[0][0])
        planes = frame_planes(full)
        timing = {k: timing[k] if timing[k] is not None else enhanced_timing[k] for k in timing}
    else:
        planes = [([float(v) for v in ds.ImagePositionPatient] if "ImagePositionPatient" in ds else None,
                   [float(v) for v in ds.ImageOrientationPatient] if "ImageOrientationPatient" in ds else None)
                  for _, ds in headers]
    n_images = len(planes)
    positions = [np.array(p) for p, _ in planes if p is not None]
    orientations = {tuple(round(v, 3) for v in o) for _, o in planes if o is not None}
    shapes = {(int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)) for _, ds in headers}
    rows, columns = next(iter(shapes))
    normal = None
    if len(orientations) == 1:
        iop = np.array(next(o for _, o in planes if o is not None))  # unrounded: exact slice normal
        normal = np.cross(iop[:3], iop[3:])
    projected = np.sort([p @ normal for p in positions]) if normal is not None and positions else np.array([])
    steps = np.diff(projected)
    gaps = steps[steps > 1e-3]  # between distinct positions (a repeated position is a second volume/echo)
    n_positions = int(gaps.size + 1) if projected.size else 0
    slice_spacing = float(np.median(gaps)) if gaps.size else _number(first, "SliceThickness") or 0.0
    agent = " ".join(t for t in (_text(first, "ContrastBolusAgent"), _text(first, "ContrastBolusRoute")) if t)
    info = SeriesInfo(
        series_uid=uid, series_number=int(number) if number not in (None, "") else None,
        description=_text(first, "SeriesDescription"), protocol=_text(first, "ProtocolName"),
        sequence_name=_text(first, "SequenceName"), modality=_text(first, "Modality").upper(), image_type=image_type,
        files=tuple(str(p) for p, _ in headers), size=(columns, rows, n_positions or n_images),
        spacing=(pixel_spacing[1] if len(pixel_spacing) > 1 else 0.0, pixel_spacing[0], slice_spacing),
        study_uid=_text(first, "StudyInstanceUID"), patient_id=_text(first, "PatientID"),
        repetition_time=timing["RepetitionTime"], echo_time=timing["EchoTime"], inversion_time=timing["InversionTime"],
        contrast_agent=agent, scanning_sequence=tuple(str(v).upper() for v in (first.get("ScanningSequence") or ())),
    )
    info.usable, info.reason = True, ""
    problems: list[str] = []
    if info.modality not in IMAGE_MODALITIES or "Rows" not in first:
        problems.append(f"not an image series ({info.modality or 'no modality'})")
    elif n_frames > 1 and not multiframe:
        problems.append(f"{len(headers)} multi-frame files in one series (not supported)")
    elif "LOCALIZER" in image_type or re.search(r"LOCALI[SZ]ER|SCOUT|SURVEY|\b3 ?PLANE|\bAAHEAD", info.text()):
        problems.append("localizer/scout")
    elif len(orientations) != 1 or len(positions) != n_images:
        problems.append(f"{len(orientations)} slice orientations" if len(orientations) > 1 else "slices without geometry")
    elif len(shapes) > 1:
        problems.append("slices of different sizes")
    elif n_positions != n_images:
        problems.append(f"{n_images} images at {n_positions} positions (several volumes/echoes in one series)")
    elif n_positions < MIN_SLICES:
        problems.append(f"only {n_positions} slices (< {MIN_SLICES})")
    elif gaps.size and (gaps.max() - gaps.min()) > 0.1 * max(abs(slice_spacing), 1e-6):
        problems.append(f"uneven slice spacing ({gaps.min():.3g}-{gaps.max():.3g} mm: missing slices?)")
    elif image_type[:1] == ("DERIVED",):
        problems.append("derived image (reformat/map); select it explicitly to use it")
    if problems:
        info.usable, info.reason = False, "; ".join(problems)
    return info


def contains_dicom(folder: str | Path, max_files: int = 500) -> bool:
    """Whether a folder (any depth) holds a DICOM Part 10 file: cheap, for readers and the CLI to pick a path.

    Looks at the "DICM" marker of at most ``max_files`` candidate files; never parses a dataset.
    """
    root = Path(folder)
    if not root.is_dir():
        return False
    for seen, path in enumerate(_candidate_files(root), start=1):
        try:
            with open(path, "rb") as handle:
                if handle.read(132)[128:] == b"DICM":
                    return True
        except OSError:
            pass
        if seen >= max_files:
            return False
    return False


def _candidate_files(root: Path) -> Iterator[Path]:
    """Files under ``root`` that may be DICOM, in a stable order (hidden folders and OS junk skipped)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if _is_candidate_file(path):
                yield path


def find_dicom_series(folder: str | Path) -> list[SeriesInfo]:
    """Every DICOM series under ``folder`` (any depth), from headers only, ordered by series number.

    Non-DICOM files, DICOMDIR and hidden/OS files are skipped. Unusable series are listed with
    ``usable`` False and a ``reason``.
    """
    root = Path(folder)
    if not root.is_dir():
        raise StudyError(f"{root}: not a folder")
    groups: dict[str, list[tuple[Path, Any]]] = {}
    for path in _candidate_files(root):
        ds = _read_header(path)
        if ds is not None:
            groups.setdefault(str(ds.SeriesInstanceUID), []).append((path, ds))
    if not groups:
        raise StudyError(f"{root}: no DICOM files found")
    series = []
    for uid, headers in groups.items():
        by_instance: dict[str, tuple[Path, Any]] = {}
        for path, ds in headers:  # one file per instance: copies in an export (same SOPInstanceUID) collapse
            by_instance.setdefault(str(ds.get("SOPInstanceUID", path)), (path, ds))
        unique = list(by_instance.values())
        info = _summarize(uid, unique)
        if len(unique) < len(headers):
            info.notes.append(f"{len(headers) - len(unique)} duplicate file(s) of the same instances ignored")
        series.append(info)
    series.sort(key=lambda s: (s.series_number is None, s.series_number or 0, s.description, s.series_uid))
    for info in series:
        if info.usable:
            info.sequence, why = classify_series(info)
            info.notes.append(why)
    return series


# ------------------------------------------------------------------------------------ reading
def _ordered_files(info: SeriesInfo) -> list[str]:
    """The series' files in slice order, as GDCM sorts them (by position along the slice normal).

    GDCM sorts the series files of one folder. A series split over folders (CD exports cap files
    per folder), or sharing its folder with duplicates, is sorted in a scratch folder of links.
    """
    import SimpleITK as sitk

    if len(info.files) == 1:  # an enhanced multi-frame object
        return list(info.files)
    folders = sorted({str(Path(f).parent) for f in info.files})
    if len(folders) == 1:
        ordered = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folders[0], info.series_uid))
        if sorted(map(os.path.abspath, ordered)) == sorted(map(os.path.abspath, info.files)):
            return ordered
    with tempfile.TemporaryDirectory(prefix="lightseg-dicom-") as scratch:
        names: dict[str, str] = {}
        for i, original in enumerate(info.files):
            link = Path(scratch) / f"{i:06d}.dcm"
            try:
                link.symlink_to(os.path.abspath(original))
            except OSError:  # no symlinks (Windows without privilege): copy
                shutil.copyfile(original, link)
            names[link.name] = original
        ordered = [names[Path(f).name] for f in sitk.ImageSeriesReader.GetGDCMSeriesFileNames(scratch, info.series_uid)]
    if len(ordered) != len(info.files):
        raise StudyError(f"{info.folder}: GDCM sorted {len(ordered)} of the {len(info.files)} files of series {info.describe()}")
    return ordered


def _read_enhanced(path: str, info: SeriesInfo) -> Any:
    """An enhanced multi-frame object as a float32 SimpleITK image, slices along z.

    highdicom, not GDCM: GDCM takes frames in stored order, and frames need not be stored in
    slice order; highdicom sorts them by position and applies the modality (rescale) transform.
    """
    import highdicom as hd
    import SimpleITK as sitk

    try:
        volume = hd.imread(path).get_volume(dtype=np.float32)
    except (ValueError, RuntimeError) as exc:
        raise StudyError(f"{path}: series {info.describe()} is not one regular volume ({str(exc).splitlines()[0][:160]})") from None
    image = volume.to_simpleitk()  # axes (slices, rows, columns) become SimpleITK x, y, z
    return sitk.Cast(sitk.PermuteAxes(image, [2, 1, 0]), sitk.sitkFloat32)  # columns, rows, slices; same geometry


def read_series(info: SeriesInfo) -> SeriesVolume:
    """Pixels of a series with true geometry (LPS), rescale slope/intercept applied, as float32."""
    import SimpleITK as sitk

    if not info.usable and not info.reason.startswith("derived"):
        raise StudyError(f"{info.folder}: series {info.describe()} cannot be used: {info.reason}")
    files = _ordered_files(info)
    if len(files) == 1:
        image = _read_enhanced(files[0], info)
        return SeriesVolume(
            image=image, source=info.folder, description=info.description or info.protocol, series_uid=info.series_uid,
            series_number=info.series_number, files=tuple(files), sequence=info.sequence, notes=list(info.notes),
        )
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.SetOutputPixelType(sitk.sitkFloat32)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        first_line = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise StudyError(f"{info.folder}: series {info.describe()} could not be read: {first_line}") from None
    return SeriesVolume(
        image=image, source=info.folder, description=info.description or info.protocol, series_uid=info.series_uid,
        series_number=info.series_number, files=tuple(files), sequence=info.sequence, notes=list(info.notes),
    )


# ------------------------------------------------------------------------------------ identification
def _series_table(series: Sequence[SeriesInfo]) -> str:
    rows = []
    for s in series:
        role = SEQUENCE_TITLES.get(s.sequence or "", "") if s.usable else f"unusable: {s.reason}"
        rows.append(f"{s.describe()}{' -> ' + role if role else ''}")
    return "; ".join(rows)


def _select(series: Sequence[SeriesInfo], key: str | int, sequence: str, where: str) -> SeriesInfo:
    """The series an override names, by SeriesInstanceUID or SeriesNumber."""
    text = str(key).strip()
    matches = [s for s in series if s.series_uid == text]
    if not matches and text.lstrip("-").isdigit():
        matches = [s for s in series if s.series_number == int(text)]
    if len(matches) != 1:
        problem = "matches no series" if not matches else f"matches {len(matches)} series (use the SeriesInstanceUID)"
        raise StudyError(f"{where}: --sequence {sequence}={text} {problem}; series: {_series_table(series)}")
    chosen = matches[0]
    if not chosen.usable and not chosen.reason.startswith("derived"):
        raise StudyError(f"{where}: --sequence {sequence}={text} names {chosen.describe()}, which cannot be used: {chosen.reason}")
    return chosen


def parse_sequence_overrides(items: Iterable[str]) -> dict[str, str]:
    """``["flair=5", "t2=1.2.840..."]`` (CLI ``--sequence``) -> {"flair": "5", "t2": "1.2.840..."}."""
    overrides: dict[str, str] = {}
    for item in items:
        sequence, sep, key = item.partition("=")
        sequence, key = sequence.strip().lower(), key.strip()
        if not sep or not key or sequence not in SEQUENCES:
            raise StudyError(f"--sequence {item!r}: expected SEQUENCE=SERIES_NUMBER_OR_UID with SEQUENCE one of "
                             f"{', '.join(SEQUENCES)}")
        if sequence in overrides:
            raise StudyError(f"--sequence {item!r}: {sequence} is given twice")
        overrides[sequence] = key
    return overrides


def identify_sequences(
    series: Sequence[SeriesInfo],
    overrides: Mapping[str, str | int] | None = None,
    required: Iterable[str] = SEQUENCES,
) -> dict[str, SeriesInfo]:
    """One series per required sequence, by the rule table, with ``overrides`` (sequence -> UID or number) first.

    Raises StudyError (one line listing the series) when a sequence has no candidate or several.
    """
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(SEQUENCES))
    where = os.path.commonpath([s.folder for s in series]) if series else "study"
    if unknown:
        raise StudyError(f"{where}: unknown sequence(s) {', '.join(unknown)} in overrides; use {', '.join(SEQUENCES)}")
    chosen: dict[str, SeriesInfo] = {}
    for sequence, key in overrides.items():
        info = _select(series, key, sequence, where)
        info.sequence = sequence
        info.notes.append(f"chosen as {SEQUENCE_TITLES[sequence]} by override {key}")
        chosen[sequence] = info
    taken = {id(s) for s in chosen.values()}
    for sequence in required:
        if sequence in chosen:
            continue
        candidates = [s for s in series if s.usable and s.sequence == sequence and id(s) not in taken]
        title = SEQUENCE_TITLES[sequence]
        if len(candidates) == 1:
            chosen[sequence] = candidates[0]
            continue
        if not candidates:
            problem = f"no {title} series found"
        else:
            problem = f"{len(candidates)} series could be {title} ({', '.join(c.describe() for c in candidates)})"
        raise StudyError(f"{where}: {problem}; choose one with --sequence {sequence}=SERIES_NUMBER_OR_UID. "
                         f"Series: {_series_table(series)}")
    patients = sorted({s.patient_id for s in chosen.values()})
    if len(patients) > 1:  # never mix patients in one segmentation
        listed = ", ".join(f"{SEQUENCE_TITLES[k]} {v.describe()} of patient {v.patient_id!r}" for k, v in chosen.items())
        raise StudyError(f"{where}: the sequences come from {len(patients)} patients ({listed}); give one patient's folder")
    studies = {s.study_uid for s in chosen.values()}
    if len(studies) > 1:
        for info in chosen.values():
            info.notes.append(f"sequences come from {len(studies)} different studies")
    return chosen


def load_dicom_series_volumes(
    folder: str | Path, overrides: Mapping[str, str | int] | None = None, required: Iterable[str] = SEQUENCES,
) -> dict[str, SeriesVolume]:
    """Find, identify and read the sequences of a DICOM study folder (series read in parallel threads)."""
    chosen = identify_sequences(find_dicom_series(folder), overrides, required)
    with ThreadPoolExecutor(max_workers=max(1, min(4, len(chosen)))) as pool:  # GDCM decoding releases the GIL
        volumes = dict(zip(chosen, pool.map(read_series, chosen.values())))
    return volumes
