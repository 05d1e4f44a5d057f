"""Study discovery: which file is FLAIR, T1, T1ce, T2 and the segmentation.

The one place that knows file naming conventions:
- BraTS 2018-2021: ``<case>_flair``, ``_t1``, ``_t1ce``, ``_t2``, ``_seg``
- BraTS 2023+:     ``<case>-t2f``, ``-t1n``, ``-t1c``, ``-t2w``, ``-seg``
- BraTS-Toolkit / CaPTk: ``fla``, ``t1``, ``t1c``, ``t2`` with suffixes such as ``_bet``
- plain names: ``flair``, ``t1``, ``t1ce``/``t1c``/``t1gd``, ``t2``
- one 4D file holding the four volumes in MODEL ORDER (FLAIR, T1, T1ce, T2; the Medical
  Segmentation Decathlon "BrainTumour" order).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

SEQUENCES: tuple[str, ...] = ("flair", "t1", "t1ce", "t2")
SEQUENCE_TITLES: dict[str, str] = {"flair": "FLAIR", "t1": "T1", "t1ce": "T1ce", "t2": "T2"}
SEGMENTATION = "seg"

# filename token (lower case) -> role
_TOKENS: dict[str, str] = {
    "flair": "flair", "fla": "flair", "t2f": "flair", "t2flair": "flair",
    "t1": "t1", "t1n": "t1", "t1w": "t1", "t1native": "t1",
    "t1ce": "t1ce", "t1c": "t1ce", "t1gd": "t1ce", "t1post": "t1ce", "t1contrast": "t1ce",
    "t2": "t2", "t2w": "t2",
    "seg": SEGMENTATION, "segmentation": SEGMENTATION, "label": SEGMENTATION, "labels": SEGMENTATION,
}
NIFTI_SUFFIXES = (".nii.gz", ".nii")
# operating-system clutter that sits beside real files (macOS AppleDouble ``._*``, Finder, Explorer)
JUNK_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini", "icon\r"})


class StudyError(ValueError):
    """A study cannot be opened; the message is one line that names the file and the problem."""


def is_nifti(path: str | Path) -> bool:
    """Tell NIfTI files from other files by their (compressed or not) suffix."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def is_junk(path: str | Path) -> bool:
    """Hidden files and OS clutter: never a study file (``._case_flair.nii.gz`` is macOS metadata)."""
    name = Path(path).name
    return name.startswith(".") or name.lower() in JUNK_NAMES


def strip_nifti_suffix(name: str) -> str:
    """The file name without its NIfTI suffix, to read the tokens that name its role."""
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def role_of(path: str | Path) -> str | None:
    """The role (a sequence name or ``seg``) a file name announces, from its last known token."""
    tokens = re.split(r"[_\-.\s]+", strip_nifti_suffix(Path(path).name).lower())
    for token in reversed(tokens):
        if token in _TOKENS:
            return _TOKENS[token]
    return None


def case_name(path: str | Path) -> str:
    """A case name: the file stem without its role token (and suffixes after it), else the folder."""
    path = Path(path)
    if path.is_dir():
        return path.name
    stem = strip_nifti_suffix(path.name)
    tokens = re.split(r"([_\-.\s]+)", stem)
    for i in range(len(tokens) - 1, -1, -1):
        if tokens[i].lower() in _TOKENS:
            head = "".join(tokens[: max(i - 1, 0)])
            return head or path.parent.name
    return stem


@dataclass
class StudyFiles:
    """Files of one study. ``multichannel`` is set for a single 4D file in MODEL ORDER."""

    name: str
    sequences: dict[str, Path] = field(default_factory=dict)
    segmentation: Path | None = None
    multichannel: Path | None = None

    @property
    def missing(self) -> list[str]:
        if self.multichannel is not None:
            return []
        return [s for s in SEQUENCES if s not in self.sequences]

    @property
    def all_paths(self) -> list[Path]:
        paths = [self.multichannel] if self.multichannel else list(self.sequences.values())
        return paths + ([self.segmentation] if self.segmentation else [])


def discover(paths: str | Path | list[str | Path]) -> StudyFiles:
    """Find the sequences and segmentation among a folder's files or a list of files.

    A single file that names no role is taken as a 4D multi-sequence volume (checked on load).
    Hidden files and OS clutter (``._*``, ``.DS_Store``, ``Thumbs.db``) are ignored, in a folder and
    when named explicitly (a glob such as ``case/*``): they are never images.
    """
    items = [Path(p) for p in (paths if isinstance(paths, (list, tuple)) else [paths])]
    if not items:
        raise StudyError("no files given")
    files: list[Path] = []
    for item in items:
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.is_file() and is_nifti(p) and not is_junk(p))
            if not found:
                raise StudyError(f"{item}: folder holds no NIfTI (.nii/.nii.gz) files")
            files.extend(found)
        elif not item.exists():
            raise StudyError(f"{item}: no such file or folder")
        elif is_junk(item):
            continue
        elif not is_nifti(item):
            raise StudyError(f"{item}: not a NIfTI file (.nii or .nii.gz expected)")
        else:
            files.append(item)

    if not files:
        raise StudyError(f"{items[0]}: only hidden files or OS clutter (._*, .DS_Store) given")
    name = case_name(items[0]) if items[0].is_dir() or len(files) > 1 else case_name(files[0])
    by_role: dict[str, list[Path]] = {}
    for f in files:
        role = role_of(f)
        if role is not None:
            by_role.setdefault(role, []).append(f)
    for role, candidates in by_role.items():
        if len(candidates) > 1:
            listed = ", ".join(str(c) for c in candidates)
            raise StudyError(f"{candidates[0].parent}: {len(candidates)} candidates for {role}: {listed}")

    study = StudyFiles(name=name)
    study.sequences = {r: by_role[r][0] for r in SEQUENCES if r in by_role}
    study.segmentation = by_role.get(SEGMENTATION, [None])[0]
    if not study.sequences:
        unnamed = [f for f in files if role_of(f) is None]
        if len(unnamed) == 1:
            study.multichannel = unnamed[0]
            study.name = case_name(unnamed[0])
        else:
            where = items[0] if len(items) == 1 else ", ".join(str(f) for f in files)
            raise StudyError(f"{where}: no FLAIR/T1/T1ce/T2 files recognised by name")
    return study
