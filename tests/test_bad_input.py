"""Bad input gives one clear line naming the file and the problem, through the reader and the API."""
from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_lightseg._reader import get_reader
from napari_lightseg.io import SEQUENCES, StudyError, load_study

SHAPE = (8, 8, 6)
LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _save(path: Path, data: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, LPS), str(path))
    return path


def _text(path: Path) -> Path:
    path.write_text("this is not an image\n")
    return path


def _gzip_garbage(path: Path) -> Path:
    path.write_bytes(gzip.compress(b"\x00" * 200))
    return path


def _empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _truncated(path: Path) -> Path:
    _save(path, np.random.default_rng(0).integers(0, 1000, (40, 40, 30)).astype(np.int16))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path


def _two_d(path: Path) -> Path:
    return _save(path, np.zeros((8, 8), np.int16))


def _five_d(path: Path) -> Path:
    return _save(path, np.zeros((*SHAPE, 2, 2), np.int16))


def _nan(path: Path) -> Path:
    data = np.ones(SHAPE, np.float32)
    data[1, 2, 3] = np.nan
    return _save(path, data)


def _inf(path: Path) -> Path:
    data = np.ones(SHAPE, np.float32)
    data[0, 0, 0] = np.inf
    data[1, 1, 1] = -np.inf
    return _save(path, data)


# maker, file name, what the message must say
BAD_FILES: dict[str, tuple[Callable[[Path], Path], str, str]] = {
    "text": (_text, "flair.nii.gz", "not a readable NIfTI"),
    "gzip-garbage": (_gzip_garbage, "flair.nii.gz", "not a readable NIfTI"),
    "empty": (_empty, "flair.nii", "not a readable NIfTI"),
    "truncated-gz": (_truncated, "flair.nii.gz", "truncated or corrupt"),
    "truncated-nii": (_truncated, "flair.nii", "truncated or corrupt"),
    "2d": (_two_d, "flair.nii.gz", "2D"),
    "5d": (_five_d, "flair.nii.gz", "5D"),
    "nan": (_nan, "flair.nii.gz", "1 voxels are NaN or infinite"),
    "inf": (_inf, "flair.nii.gz", "2 voxels are NaN or infinite"),
}


def _case_with(folder: Path, kind: str) -> tuple[Path, str, str]:
    """A case folder whose FLAIR is bad and the other sequences fine."""
    make, name, problem = BAD_FILES[kind]
    folder.mkdir()
    bad = make(folder / f"case_{name}")
    for seq in SEQUENCES[1:]:
        _save(folder / f"case_{seq}.nii.gz", np.ones(SHAPE, np.int16))
    return folder, bad.name, problem


def _assert_one_line(error: pytest.ExceptionInfo, *parts: str) -> None:
    message = str(error.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, (part, message)


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_file_in_a_case_folder(tmp_path: Path, kind: str) -> None:
    folder, name, problem = _case_with(tmp_path / "case", kind)
    with pytest.raises(StudyError) as api_error:
        load_study(folder)
    _assert_one_line(api_error, name, problem)
    reader = get_reader(str(folder))
    assert callable(reader)
    with pytest.raises(StudyError) as reader_error:
        reader(str(folder))
    _assert_one_line(reader_error, name, problem)


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_single_file(tmp_path: Path, kind: str) -> None:
    make, name, problem = BAD_FILES[kind]
    path = make(tmp_path / f"scan_{name}")
    reader = get_reader(str(path))
    assert callable(reader)
    with pytest.raises(StudyError) as reader_error:
        reader(str(path))
    _assert_one_line(reader_error, path.name, problem)
    with pytest.raises(StudyError) as api_error:
        load_study([path])
    _assert_one_line(api_error, path.name)


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no images here")
    assert get_reader(str(tmp_path)) is None
    with pytest.raises(StudyError) as error:
        load_study(tmp_path)
    _assert_one_line(error, tmp_path.name, "no NIfTI")


def test_two_flairs(tmp_path: Path) -> None:
    for name in ("a_flair.nii.gz", "b_FLAIR.nii.gz", *(f"a_{s}.nii.gz" for s in SEQUENCES[1:])):
        _save(tmp_path / name, np.ones(SHAPE, np.int16))
    with pytest.raises(StudyError) as api_error:
        load_study(tmp_path)
    _assert_one_line(api_error, "a_flair.nii.gz", "b_FLAIR.nii.gz", "2 candidates for flair")
    reader = get_reader(str(tmp_path))
    assert callable(reader)
    with pytest.raises(StudyError) as reader_error:
        reader(str(tmp_path))
    _assert_one_line(reader_error, "a_flair.nii.gz", "b_FLAIR.nii.gz")


def test_non_nifti_through_the_api(tmp_path: Path) -> None:
    path = _text(tmp_path / "scan.txt")
    with pytest.raises(StudyError) as error:
        load_study(path)
    _assert_one_line(error, "scan.txt", "not a NIfTI file")
    with pytest.raises(StudyError) as error:
        load_study(tmp_path / "absent_flair.nii.gz")
    _assert_one_line(error, "absent_flair.nii.gz", "no such file")


@pytest.mark.parametrize("make", [
    lambda tmp: tmp / "does-not-exist.nii.gz",
    lambda tmp: tmp / "no-such-folder",
    lambda tmp: _text(tmp / "notes.txt"),
    lambda tmp: _save(tmp / "image.nii", np.zeros(SHAPE, np.int16)).rename(tmp / "image.png"),
    lambda tmp: [str(tmp / "a_flair.nii.gz"), str(_text(tmp / "notes.txt"))],
    lambda tmp: [],
])
def test_get_reader_never_raises(tmp_path: Path, make: Callable[[Path], Path | list[str]]) -> None:
    target = make(tmp_path)
    assert get_reader(target if isinstance(target, list) else str(target)) is None
