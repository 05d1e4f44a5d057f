"""gzip through zlib-ng (io._gzip): the reader gives nibabel's arrays, written files are standard gzip, and
without zlib-ng everything falls back to stdlib zlib (through nibabel) unchanged."""
from __future__ import annotations

import gzip
import importlib
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_lightseg.io import _gzip, nifti
from napari_lightseg.io.labels import CONVENTIONS, from_internal
from napari_lightseg.io.masks import save_labels
from napari_lightseg.io.naming import StudyError
from napari_lightseg.io.nifti import Geometry, load_nifti, save_nifti_like

needs_zlib_ng = pytest.mark.skipif(not _gzip.available(), reason="zlib-ng is not installed (pip install zlib-ng)")
SHAPE = (23, 17, 11)


def _reference(path: Path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)


def _assert_same_array(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(expected).tobytes()  # bit for bit (NaN-safe)


def _synthetic(folder: Path) -> list[Path]:
    """Small .nii.gz files written by nibabel (stdlib gzip): the dtypes, scalings and byte orders a scanner may give."""
    rng = np.random.default_rng(12)
    affine = np.diag([-1.2, 0.9, 3.0, 1.0])
    affine[:3, 3] = [10, -20, 5]
    files = []

    def save(name: str, data: np.ndarray, slope: float | None = None, inter: float = 0.0, big_endian: bool = False) -> None:
        img = nib.Nifti1Image(data, affine)
        if slope is not None:
            img.header.set_slope_inter(slope, inter)
        if big_endian:
            img = nib.Nifti1Image(data, affine, header=img.header.as_byteswapped(">"))
        files.append(folder / name)
        nib.save(img, str(files[-1]))

    save("int16.nii.gz", rng.integers(-300, 3000, SHAPE).astype(np.int16))
    save("uint8_labels.nii.gz", rng.choice(np.array([0, 1, 2, 4], np.uint8), SHAPE))
    save("float32.nii.gz", rng.normal(100, 30, SHAPE).astype(np.float32))
    save("int32_big.nii.gz", rng.integers(-2**30, 2**30, SHAPE).astype(np.int32))  # float64 then float32 in nibabel
    save("int16_scaled.nii.gz", rng.integers(0, 4000, SHAPE).astype(np.int16), slope=0.37, inter=-12.5)
    save("int16_big_endian.nii.gz", rng.integers(-300, 3000, SHAPE).astype(np.int16), big_endian=True)
    save("uint16.NII.GZ", rng.integers(0, 60000, SHAPE).astype(np.uint16))
    save("plain.nii", rng.integers(0, 1000, SHAPE).astype(np.int16))  # not gzip: nibabel's own path
    return files


@pytest.mark.parametrize("fallback", [False, True], ids=["zlib-ng", "stdlib"])
def test_reader_equals_nibabel_on_synthetic_files(tmp_path: Path, monkeypatch, fallback: bool) -> None:
    if fallback:
        monkeypatch.setattr(_gzip, "_zlib_ng", None)
    for path in _synthetic(tmp_path):
        data, img = load_nifti(path)
        _assert_same_array(data, _reference(path))
        assert data.flags.writeable
        stored, _ = load_nifti(path, keep_integers=True)
        if nifti._always_finite(img):  # unscaled integers: the stored values in the stored dtype
            _assert_same_array(stored, np.asarray(nib.load(str(path)).dataobj))
        else:
            _assert_same_array(stored, data)


def test_reader_equals_nibabel_on_shared_cases(data_root: Path) -> None:
    cases = sorted(p for p in (data_root / "brats18").iterdir() if p.is_dir())[:2]
    assert cases, f"no cases in {data_root / 'brats18'}"
    for case in cases:
        for path in sorted(case.glob("*.nii*")):
            data, _ = load_nifti(path)
            _assert_same_array(data, _reference(path))


@needs_zlib_ng
def test_reader_inflates_with_zlib_ng(tmp_path: Path, monkeypatch) -> None:
    path = _synthetic(tmp_path)[0]
    made = []

    class Counting(_gzip.GzipStream):
        def __init__(self, handle) -> None:
            made.append(handle.name)
            super().__init__(handle)

    monkeypatch.setattr(_gzip, "GzipStream", Counting)
    load_nifti(path)
    assert made == [str(path)]


def test_truncated_gzip_is_a_study_error(tmp_path: Path) -> None:
    path = _synthetic(tmp_path)[0]
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(StudyError, match="truncated or corrupt"):
        load_nifti(path)


def _mask_geometry() -> tuple[np.ndarray, Geometry]:
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    affine[:3, 3] = [0, 239, 0]
    img = nib.Nifti1Image(np.zeros(SHAPE, np.int16), affine)
    img.header.set_sform(affine, 1)
    img.header.set_qform(affine, 1)
    geometry = Geometry.from_image(img)
    classes = np.random.default_rng(3).choice(np.arange(4, dtype=np.uint8), geometry.display_shape, p=[0.9, 0.04, 0.04, 0.02])
    return classes, geometry


@pytest.mark.parametrize("fallback", [False, True], ids=["zlib-ng", "stdlib"])
def test_written_mask_reads_back_with_stdlib_gzip_and_nibabel(tmp_path: Path, monkeypatch, fallback: bool) -> None:
    if fallback:
        monkeypatch.setattr(_gzip, "_zlib_ng", None)
    classes, geometry = _mask_geometry()
    path = save_labels(tmp_path / "mask.nii.gz", classes, geometry, "brats2021")
    raw = path.read_bytes()
    assert raw[:2] == b"\x1f\x8b"  # a gzip file
    plain = gzip.decompress(raw)  # stdlib gzip (checks the CRC and length)
    # the same decompressed file as nibabel's own writer (stdlib zlib) makes
    expected = geometry.to_disk(from_internal(classes, "brats2021"))
    reference = tmp_path / "reference.nii"
    save_nifti_like(reference, expected, geometry)
    assert plain == reference.read_bytes()
    back = nib.load(str(path))  # nibabel reads it through stdlib gzip
    np.testing.assert_array_equal(np.asarray(back.dataobj), expected)
    assert np.asarray(back.dataobj).dtype == np.uint8
    np.testing.assert_array_equal(back.affine, geometry.affine)


@needs_zlib_ng
def test_written_mask_is_one_gzip_member_no_larger_than_stdlib(tmp_path: Path, monkeypatch) -> None:
    classes, geometry = _mask_geometry()
    fast = save_labels(tmp_path / "fast.nii.gz", classes, geometry).read_bytes()
    monkeypatch.setattr(_gzip, "_zlib_ng", None)
    stdlib = save_labels(tmp_path / "stdlib.nii.gz", classes, geometry).read_bytes()
    assert gzip.decompress(fast) == gzip.decompress(stdlib)
    assert len(fast) <= 1.2 * len(stdlib), (len(fast), len(stdlib))
    import zlib

    member = zlib.decompressobj(31)
    member.decompress(fast)
    assert member.eof and member.unused_data == b""  # one member, nothing after it


def test_import_fallback_without_zlib_ng(tmp_path: Path, monkeypatch) -> None:
    """zlib_ng not importable: io._gzip says so, reading and writing go through stdlib zlib (nibabel)."""
    files = _synthetic(tmp_path)
    before = _gzip.available()
    for name in ("zlib_ng", "zlib_ng.zlib_ng"):
        monkeypatch.setitem(sys.modules, name, None)  # "import zlib_ng" raises ImportError
    try:
        importlib.reload(_gzip)
        assert not _gzip.available() and _gzip.compress(b"x") is None and _gzip.errors() == ()
        for path in files:
            _assert_same_array(load_nifti(path)[0], _reference(path))
        classes, geometry = _mask_geometry()
        path = save_labels(tmp_path / "mask.nii.gz", classes, geometry)
        np.testing.assert_array_equal(np.asarray(nib.load(str(path)).dataobj), geometry.to_disk(from_internal(classes)))
    finally:
        monkeypatch.undo()
        importlib.reload(_gzip)
    assert _gzip.available() == before  # reloaded as it was


@pytest.mark.parametrize("convention", sorted(CONVENTIONS))
def test_from_internal_equals_a_lookup_table(convention: str) -> None:
    classes = np.random.default_rng(5).integers(0, 4, (9, 8, 7)).astype(np.uint8)
    lut = np.zeros(4, np.uint8)
    for file_value, internal in CONVENTIONS[convention].items():
        lut[internal] = file_value
    for array in (classes, classes.astype(np.int64), np.asfortranarray(classes), classes[::-1, :, ::2]):
        got, expected = from_internal(array, convention), lut[array.astype(np.intp)]
        assert got.dtype == np.uint8 and got.flags.c_contiguous == expected.flags.c_contiguous
        np.testing.assert_array_equal(got, expected)


def test_to_disk_in_fortran_order_has_the_same_values() -> None:
    classes, geometry = _mask_geometry()
    c_order, f_order = geometry.to_disk(classes), geometry.to_disk(classes, "F")
    assert c_order.flags.c_contiguous and f_order.flags.f_contiguous
    np.testing.assert_array_equal(c_order, f_order)
