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


# ------------------------------------------------------------------ headers and affines (before any allocation)
@pytest.mark.parametrize("name", ["huge_flair.nii", "huge_flair.nii.gz"])
@pytest.mark.parametrize("shape", [(30000, 30000, 30000), (5000, 10, 10), (1100, 1100, 1000)])
def test_absurd_header_sizes_are_refused(tmp_path: Path, name: str, shape: tuple[int, int, int]) -> None:
    from bad_inputs import absurd_header

    path = absurd_header(tmp_path / name, shape)
    with pytest.raises(StudyError) as error:
        load_study([path])
    _assert_one_line(error, name, "x".join(map(str, shape)), "corrupt header")


def test_more_voxels_than_memory_is_refused(tmp_path: Path, monkeypatch) -> None:
    from bad_inputs import absurd_header

    from napari_lightseg.io import nifti

    monkeypatch.setattr(nifti, "_available_memory_bytes", lambda: 1000)
    path = absurd_header(tmp_path / "scan_flair.nii.gz", (64, 64, 64))
    with pytest.raises(StudyError) as error:
        nifti.load_nifti(path)
    _assert_one_line(error, "scan_flair.nii.gz", "of memory is available")


@pytest.mark.parametrize("kind, problem", [("nan", "NaN or infinite"), ("singular", "singular"), ("nan-qform", "NaN or infinite")])
def test_degenerate_affines_are_refused(tmp_path: Path, kind: str, problem: str) -> None:
    from bad_inputs import bad_affine

    path = bad_affine(tmp_path / f"case_{kind}_flair.nii.gz", kind)
    with pytest.raises(StudyError) as error:
        load_study([path])
    _assert_one_line(error, path.name, problem)
    reader = get_reader(str(path))
    with pytest.raises(StudyError):
        reader(str(path))


# ------------------------------------------------------------------ discovery ignores OS junk
def test_os_junk_is_ignored(tmp_path: Path) -> None:
    from bad_inputs import synthetic_case, with_os_junk

    case = with_os_junk(synthetic_case(tmp_path))
    assert (case / "._blob_flair.nii.gz").exists() and (case / ".DS_Store").exists()
    study = load_study(case)
    assert {p.name for p in study.files.all_paths} == {f"blob_{s}.nii.gz" for s in (*SEQUENCES, "seg")}
    explicit = load_study(sorted(str(p) for p in case.iterdir()))  # a shell glob with dot-files included
    assert explicit.files.sequences["flair"].name == "blob_flair.nii.gz"
    junk_only = tmp_path / "junk"
    junk_only.mkdir()
    (junk_only / "._x_flair.nii.gz").write_bytes(b"\x00\x05\x16\x07")
    with pytest.raises(StudyError) as error:
        load_study(junk_only)
    _assert_one_line(error, "junk", "no NIfTI")


# ------------------------------------------------------------------ input checks (preprocess.quality), one per rule
@pytest.fixture(scope="module")
def tiny_card(tmp_path_factory):
    from helpers import tiny_onnx_card

    return tiny_onnx_card(tmp_path_factory.mktemp("tiny"))


def _variant(change: Callable[[str, np.ndarray], np.ndarray]):
    import dataclasses

    from helpers import blob_study

    study = blob_study()
    return dataclasses.replace(study, images={s: change(s, v).astype(np.float32) for s, v in study.images.items()})


def _clean_labels(card) -> np.ndarray:
    from helpers import blob_study

    from napari_lightseg import engine

    result = engine.run(blob_study(), card)
    assert result.report.notes == [] and (result.labels > 0).sum() > 50
    return result.labels


@pytest.mark.parametrize("change, problem", [
    (lambda s, v: np.zeros_like(v) if s == "flair" else v, "FLAIR is blank (every voxel is 0)"),
    (lambda s, v: np.full_like(v, 300) if s == "t1ce" else v, "T1ce is constant (every voxel is 300)"),
    (lambda s, v: np.where(v > 0, 7, 0) if s == "t2" else v, "T2 holds one value inside the brain region"),
    (lambda s, v: np.where(np.arange(v.size).reshape(v.shape) == 5, np.nan, v) if s == "flair" else v, "1 voxels are NaN"),
])
def test_unusable_sequences_are_refused(tiny_card, change, problem: str) -> None:
    from napari_lightseg import engine

    with pytest.raises(StudyError) as error:
        engine.run(_variant(change), tiny_card)
    _assert_one_line(error, problem)


@pytest.mark.parametrize("change, note", [
    (lambda s, v: v * np.float32(1e30), "rescaled by a power of two"),
    (lambda s, v: v * np.float32(1e-30), "rescaled by a power of two"),
    (lambda s, v: v - 2000, "background was -2000, not 0"),
    (lambda s, v: v * np.float32(1e30) - np.float32(5e31), "background was -5e+31"),
])
def test_fixable_inputs_give_the_clean_mask_with_a_note(tiny_card, change, note: str) -> None:
    from napari_lightseg import engine

    result = engine.run(_variant(change), tiny_card)
    assert np.array_equal(result.labels, _clean_labels(tiny_card))
    assert any(note in n for n in result.report.notes), result.report.notes


@pytest.mark.parametrize("change, warning", [
    (lambda s, v: np.digitize(v, [50, 120, 200]) if s == "flair" else v, "FLAIR has only 3 distinct intensities"),
    (lambda s, v: np.where(np.indices(v.shape)[0] < 18, 0, v) if s == "t1" else v, "T1 is 0 in"),
    (lambda s, v: np.where(v == 0, 40 + np.random.default_rng(1).random(v.shape), v), "fills 100% of blob's volume"),
])
def test_suspicious_inputs_get_a_warning(tiny_card, change, warning: str) -> None:
    from napari_lightseg import engine

    result = engine.run(_variant(change), tiny_card)
    assert any(n.startswith("WARNING") and warning in n for n in result.report.notes), result.report.notes


def test_identical_sequences_get_a_warning(tiny_card) -> None:
    import dataclasses

    from helpers import blob_study

    from napari_lightseg import engine

    study = blob_study()
    study = dataclasses.replace(study, images={**study.images, "flair": study.images["t2"]})
    notes = engine.run(study, tiny_card).report.notes
    assert any("FLAIR and T2 are identical" in n for n in notes), notes


def test_implausible_result_gets_a_warning() -> None:
    from helpers import blob_study

    from napari_lightseg.preprocess import quality

    study = blob_study()
    brain = study.images["flair"] != 0
    assert quality.check_result(np.where(brain, 2, 0), study, SEQUENCES)[0].startswith("WARNING the whole tumour covers 100%")
    assert quality.check_result(study.labels, study, SEQUENCES) == []


def test_clean_study_passes_unchanged() -> None:
    from helpers import blob_study

    from napari_lightseg.preprocess import quality

    study = blob_study()
    checked, notes = quality.check_inputs(study, SEQUENCES)
    assert checked is study and notes == []


# ------------------------------------------------------------------ real cases
@pytest.mark.slow
def test_real_case_corpus(data_root: Path, tmp_path: Path) -> None:
    """A real case: clean preprocessing untouched; minus-2000 background gives the identical mask; blank FLAIR refused."""
    import dataclasses

    from bad_inputs import blank_flair, hashes

    from napari_lightseg import engine
    from napari_lightseg.models import get_card
    from napari_lightseg.preprocess import prepare, quality

    case = data_root / "brats18" / "Brats18_TCIA10_639_1"
    before = hashes([case])
    study = load_study(case, with_labels=False)
    checked, notes = quality.check_inputs(study, SEQUENCES)
    assert checked is study and notes == []
    card = get_card("mnv3-lraspp-int8")
    clean = engine.run(study, card)
    shifted = dataclasses.replace(study, images={s: v - 2000 for s, v in study.images.items()})
    assert np.array_equal(prepare([v for v in quality.check_inputs(shifted, SEQUENCES)[0].images.values()])[0],
                          prepare(list(study.images.values()))[0])
    result = engine.run(shifted, card)
    assert np.array_equal(result.labels, clean.labels) and result.report.notes
    with pytest.raises(StudyError) as error:
        load_study(blank_flair(case, tmp_path / "blank"))  # loads fine ...
        engine.run(load_study(tmp_path / "blank"), card)    # ... and is refused before inference
    _assert_one_line(error, "Brats18_TCIA10_639_1_flair.nii.gz", "FLAIR is blank")
    assert hashes([case]) == before
