"""Output planning: every file a run writes is validated up front and committed atomically at the end.

Why: a segmentation run must never replace one of its own inputs (the FLAIR, the ground truth), never
replace an existing file silently, and never leave half its outputs behind when it fails part way.

Usage (the CLI, writers, batch jobs)::

    plan = OutputPlan(inputs=[case_folder, *study_files], overwrite=args.overwrite)
    plan.add(out_path, "mask")              # validates NOW, before any work; returns a temp path
    plan.add(report_path, "report")
    ... the long computation ...
    nib.save(img, plan.temp(out_path))       # write each output to its temp file ...
    plan.write(report_path, lambda tmp: tmp.write_text(text))   # ... or let the plan call a writer
    plan.commit()                            # renames every temp onto its target, at the end

``OutputPlan`` is also a context manager: leaving the ``with`` block without ``commit()`` (an error, a
cancel) removes every temp file, so nothing is half-written. ``plan.write(path, fn)`` adds the path if
it was not added before. A writer that takes an optional ``plan`` (``save_nifti_like``,
``save_labels``, ``compare.write_csv``) writes into the caller's plan, or makes and commits its own.

Rules, checked by ``add`` (each failure is a one-line ``OutputError`` naming the file):
- an output may not resolve (symlinks, relative paths, ``..``, hard links) to an input file, to an
  existing file inside an input folder, or to another output of the same run; a path that differs from
  an input only in letter case is refused too (the same file on macOS and Windows);
- an existing output (or a dangling symlink) is refused unless ``overwrite``;
- the path may not be a folder, and its folder must exist and be writable (a temp file is created
  there right away, which proves it).
Temp files are hidden (``.lightseg-*``) in the target's own folder, so the final rename is atomic on
every filesystem; their mode follows the umask (``mkstemp`` would leave 0600). Without ``overwrite`` the
commit links the temp onto the target, so a file that appeared meanwhile is still not replaced.
An output left empty (planned, never written) fails the whole commit: no silent empty files.
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .naming import StudyError

_UMASK_LOCK = threading.Lock()
TEMP_PREFIX = ".lightseg-"
_DOUBLE_SUFFIXES = (".nii.gz", ".tar.gz")


class OutputError(StudyError, OSError):
    """An output path is unsafe or unusable; one line naming the file.

    Also an ``OSError``, so code that already reports failed writes (the widgets' save buttons) shows it.
    """


def source_file(source: object) -> str | None:
    """The file behind a recorded source: a 4D file's volumes are recorded as ``<file>[i]``."""
    return re.sub(r"\[\d+\]$", "", str(source)) if source else None


def current_umask() -> int:
    """The process umask (read without changing it for longer than a lock-protected instant)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new regular file gets under the current umask (0644 under umask 022)."""
    return 0o666 & ~current_umask()


def _key(path: str | Path) -> str:
    return os.path.normcase(os.path.realpath(path))


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for double in _DOUBLE_SUFFIXES:
        if name.endswith(double):
            return path.name[-len(double):]
    return path.suffix


@dataclass
class _Planned:
    target: Path
    kind: str
    temp: Path
    existed: bool


class OutputPlan:
    """The outputs of one run: validated when added, written to temp files, renamed together by ``commit``."""

    def __init__(self, inputs: Iterable[str | Path | None] = (), *, overwrite: bool = False) -> None:
        self.overwrite = overwrite
        self._inputs: list[Path] = []
        self._input_files: dict[str, Path] = {}  # resolved key -> as given
        self._input_folders: dict[str, Path] = {}
        self._planned: dict[str, _Planned] = {}
        for path in inputs:
            if path is not None:
                self.add_input(path)

    # ------------------------------------------------------------------ inputs
    def add_input(self, path: str | Path) -> None:
        """Protect ``path`` (a file, or a folder: every file in it) from being written."""
        path = Path(path)
        self._inputs.append(path)
        if path.is_dir():
            self._input_folders[_key(path)] = path
            with contextlib.suppress(OSError):
                for child in path.iterdir():
                    self._input_files.setdefault(_key(child), child)
        else:
            self._input_files.setdefault(_key(path), path)

    def _clash_with_input(self, path: Path) -> str | None:
        """Why ``path`` must not be written because of an input, or None."""
        key = _key(path)
        if key in self._input_files:
            original = self._input_files[key]
            named = "" if os.path.abspath(original) == os.path.abspath(path) else f" ({original})"
            return f"is an input of this run{named}; choose another output path"
        if os.path.lexists(path):
            for original in self._input_files.values():
                with contextlib.suppress(OSError):
                    if os.path.samefile(path, original):
                        return f"is the same file as the input {original}; choose another output path"
            if os.path.dirname(key) in self._input_folders:
                return "is an existing file inside an input folder; choose another output path"
        folded = key.casefold()
        for input_key, original in self._input_files.items():
            if input_key.casefold() == folded:
                return f"differs only in letter case from the input {original} (the same file on macOS/Windows)"
        return None

    # ----------------------------------------------------------------- outputs
    def add(self, path: str | Path, kind: str = "output") -> Path:
        """Validate an output path now and reserve a temp file beside it; return the temp path."""
        target = Path(path)
        label = f"{target} ({kind})" if kind != "output" else str(target)
        if not target.name or target.name in (".", ".."):
            raise OutputError(f"{target}: not a file name")
        problem = self._clash_with_input(target)
        if problem:
            raise OutputError(f"{label}: {problem}")
        key = _key(target)
        for other in self._planned.values():
            if _key(other.target) == key or _key(other.target).casefold() == key.casefold():
                raise OutputError(f"{label}: the same path as the {other.kind} output {other.target}")
        if target.is_dir():
            raise OutputError(f"{label}: is a folder; give a file name")
        existed = os.path.lexists(target)
        if existed and not self.overwrite:
            raise OutputError(f"{label}: file exists; refusing to overwrite (use --overwrite to replace it)")
        folder = target.parent if str(target.parent) else Path(".")
        if not folder.is_dir():
            raise OutputError(f"{label}: folder {folder} does not exist")
        try:
            fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=_suffix(target), dir=folder)
        except OSError as exc:
            raise OutputError(f"{label}: cannot write in folder {folder} ({exc.strerror or exc})") from None
        os.close(fd)
        os.chmod(temp, file_mode())
        self._planned[key] = _Planned(target, kind, Path(temp), existed)
        return Path(temp)

    def temp(self, path: str | Path) -> Path:
        """The temp path reserved for an added output."""
        planned = self._planned.get(_key(path))
        if planned is None:
            raise KeyError(f"{path} was not added to this output plan")
        return planned.temp

    def __contains__(self, path: object) -> bool:
        return isinstance(path, (str, Path)) and _key(path) in self._planned

    def write(self, path: str | Path, writer: Callable[[Path], object], kind: str = "output") -> Path:
        """Call ``writer(temp_path)`` for an output (added now if it was not); return the temp path."""
        temp = self.temp(path) if path in self else self.add(path, kind)
        writer(temp)
        return temp

    @property
    def targets(self) -> list[Path]:
        return [p.target for p in self._planned.values()]

    # ------------------------------------------------------------ commit/discard
    def commit(self) -> list[Path]:
        """Rename every temp file onto its target; on failure remove what this commit created."""
        unwritten = [p for p in self._planned.values() if not os.path.exists(p.temp) or os.path.getsize(p.temp) == 0]
        if unwritten:
            self.discard()
            names = ", ".join(f"{p.target} ({p.kind})" for p in unwritten)
            raise RuntimeError(f"{names}: planned but never written; nothing was committed")
        done: list[_Planned] = []
        try:
            for planned in self._planned.values():
                os.chmod(planned.temp, file_mode())  # a writer may have recreated the temp file
                if self.overwrite or planned.existed:
                    os.replace(planned.temp, planned.target)
                else:
                    self._link_new(planned)
                done.append(planned)
        except BaseException:
            for planned in done:
                if not planned.existed:
                    with contextlib.suppress(OSError):
                        os.unlink(planned.target)
            self.discard()
            raise
        self._planned.clear()
        return [p.target for p in done]

    @staticmethod
    def _link_new(planned: _Planned) -> None:
        """Place a new file without ever replacing one that appeared since ``add``."""
        try:
            os.link(planned.temp, planned.target)
        except FileExistsError:
            raise OutputError(f"{planned.target}: file appeared while the run was working; refusing to overwrite") from None
        except OSError:  # a filesystem without hard links
            if os.path.lexists(planned.target):
                raise OutputError(f"{planned.target}: file appeared while the run was working; refusing to overwrite") from None
            os.replace(planned.temp, planned.target)
            return
        os.unlink(planned.temp)

    def discard(self) -> None:
        """Remove every temp file; the targets are left as they were."""
        for planned in self._planned.values():
            with contextlib.suppress(OSError):
                os.unlink(planned.temp)
        self._planned.clear()

    def __enter__(self) -> OutputPlan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


def write_atomically(path: str | Path, writer: Callable[[Path], object], *, inputs: Iterable[str | Path | None] = (),
                     overwrite: bool = False, kind: str = "output") -> Path:
    """One output on its own: validate, write to a temp file, rename. Returns the target path."""
    with OutputPlan(inputs, overwrite=overwrite) as plan:
        plan.write(path, writer, kind)
        return plan.commit()[0]
