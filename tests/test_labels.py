"""BraTS label conventions: file values to internal classes and back, and what the writer saves."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_lightseg._writer import write_labels
from napari_lightseg.io import (
    DEFAULT_CONVENTION,
    Geometry,
    LabelError,
    Segmentation,
    StudyError,
    from_internal,
    load_labels,
    region_mask,
    save_labels,
    save_segmentation,
    to_internal,
)
from napari_lightseg.io.labels import detect_convention, read_label_sidecar
from napari_lightseg.layers import labels_layer

INTERNAL = np.array([[[0, 1], [2, 3]]], dtype=np.uint8)
FILE_VALUES = {"brats2021": np.array([[[0, 1], [2, 4]]]), "brats2023": np.array([[[0, 1], [2, 3]]])}


@pytest.mark.parametrize("convention", sorted(FILE_VALUES))
def test_to_internal_and_back(convention: str) -> None:
    classes, detected = to_internal(FILE_VALUES[convention].astype(np.int16))
    assert detected == convention
    assert classes.dtype == np.uint8
    np.testing.assert_array_equal(classes, INTERNAL)
    np.testing.assert_array_equal(from_internal(classes, convention), FILE_VALUES[convention])


def test_float_labels_with_integer_values_are_accepted() -> None:
    classes, detected = to_internal(FILE_VALUES["brats2021"].astype(np.float32))
    assert detected == "brats2021"
    np.testing.assert_array_equal(classes, INTERNAL)


@pytest.mark.parametrize(("values", "expected"), [
    ({0, 1, 2, 4}, "brats2021"), ({0, 4}, "brats2021"), ({0, 1, 2, 3}, "brats2023"), ({0, 3}, "brats2023"),
    ({0, 1, 2}, None), ({0}, None),
])
def test_detect_convention(values: set[int], expected: str | None) -> None:
    assert detect_convention(values) == expected
    assert detect_convention(np.array(sorted(values))) == expected


def test_ambiguous_labels_default_to_2021_values() -> None:
    classes, detected = to_internal(np.array([0, 1, 2]))
    assert detected is None
    np.testing.assert_array_equal(classes, [0, 1, 2])


@pytest.mark.parametrize(("data", "pattern"), [
    (np.array([0, 1, 5]), r"unexpected label values \[5\]"),
    (np.array([0, -1]), r"unexpected label values \[-1\]"),
    (np.array([0, 3, 4]), "both label 3 and 4"),
    (np.array([0.0, 1.5]), "non-integer"),
])
def test_unexpected_values(data: np.ndarray, pattern: str) -> None:
    with pytest.raises(LabelError, match=pattern):
        to_internal(data, source="case_seg.nii.gz")
    with pytest.raises(LabelError, match="case_seg.nii.gz"):
        to_internal(data, source="case_seg.nii.gz")


def test_from_internal_rejects_bad_input() -> None:
    with pytest.raises(LabelError, match="unknown label convention"):
        from_internal(INTERNAL, "brats2019")
    with pytest.raises(LabelError, match="0..3"):
        from_internal(np.array([0, 4]))


def test_regions() -> None:
    classes = np.array([0, 1, 2, 3])
    np.testing.assert_array_equal(region_mask(classes, "WT"), [False, True, True, True])
    np.testing.assert_array_equal(region_mask(classes, "TC"), [False, True, False, True])
    np.testing.assert_array_equal(region_mask(classes, "ET"), [False, False, False, True])


def _seg_file(path: Path, values: np.ndarray) -> Path:
    data = np.zeros((6, 5, 4), np.uint8)
    data[1, 1:1 + values.size, 1] = values
    nib.save(nib.Nifti1Image(data, np.diag([-1.0, -1.0, 1.0, 1.0])), str(path))
    return path


def _saved_values(path: str | Path) -> set[int]:
    return set(np.unique(np.asarray(nib.load(str(path)).dataobj)).tolist())


@pytest.mark.parametrize(("source", "expected"), [
    (np.array([1, 2, 3]), {0, 1, 2, 3}),  # a 2023 file is written back as 2023
    (np.array([1, 2, 4]), {0, 1, 2, 4}),  # a 2021 file as 2021
    (np.array([1, 2]), {0, 1, 2}),  # undetermined: 2021 (identical values here)
])
def test_writer_keeps_the_study_convention(tmp_path: Path, source: np.ndarray, expected: set[int]) -> None:
    classes, convention, geometry = load_labels(_seg_file(tmp_path / "in_seg.nii.gz", source))
    data, kwargs, kind = labels_layer(classes, geometry, "mask", convention=convention)
    assert kind == "labels"
    written = write_labels(str(tmp_path / "out.nii.gz"), data, kwargs)
    assert _saved_values(written[0]) == expected


def test_writer_defaults_to_2021_without_a_convention(tmp_path: Path) -> None:
    geometry = Geometry.from_image(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4)))
    classes = np.zeros(geometry.display_shape, np.uint8)
    classes[1, 1, 1:4] = [1, 2, 3]
    data, kwargs, _ = labels_layer(classes, geometry, "drawn")
    written = write_labels(str(tmp_path / "out.nii.gz"), data, kwargs)
    assert _saved_values(written[0]) == {0, 1, 2, 4}


@pytest.mark.parametrize(("convention", "expected"), [("brats2021", {0, 1, 2, 4}), ("brats2023", {0, 1, 2, 3})])
def test_save_in_an_explicit_convention(tmp_path: Path, convention: str, expected: set[int]) -> None:
    classes, _, geometry = load_labels(_seg_file(tmp_path / "in_seg.nii.gz", np.array([1, 2, 4])))
    out = save_labels(tmp_path / "out", classes, geometry, convention)
    assert out.name == "out.nii.gz"
    assert _saved_values(out) == expected


def _oblique_segmentation(convention: str | None) -> Segmentation:
    """Internal classes 1-3 on a non-trivial grid (voxel order LPS, 2 mm z): a round trip proves the grid too."""
    affine = np.diag([-1.0, -1.0, 2.0, 1.0])
    affine[:3, 3] = [10.0, 20.0, -30.0]
    geometry = Geometry.from_image(nib.Nifti1Image(np.zeros((5, 6, 4), np.uint8), affine))
    classes = np.zeros(geometry.display_shape, np.uint8)
    classes[1, 2, 1:4] = [1, 2, 3]
    return Segmentation(classes, geometry, convention, "m")


def test_segmentation_round_trips(tmp_path: Path) -> None:
    mask = _oblique_segmentation("brats2023")
    out = save_segmentation(tmp_path / "out", mask)
    classes, convention, geometry = load_labels(out)
    assert out.name == "out.nii.gz" and convention == "brats2023" and read_label_sidecar(out)["convention"] == "brats2023"
    assert geometry.same_grid(mask.geometry) and np.array_equal(classes, mask.labels)
    # the same file, byte for byte, as save_labels with the loose arguments
    again = save_labels(tmp_path / "loose.nii.gz", mask.labels, mask.geometry, "brats2023")
    assert again.read_bytes() == out.read_bytes()
    assert (tmp_path / "loose.labels.json").read_bytes() == (tmp_path / "out.labels.json").read_bytes()


@pytest.mark.parametrize(("own", "explicit", "expected"), [
    ("brats2023", "brats2021", "brats2021"),  # the caller's choice wins
    ("brats2023", None, "brats2023"),  # else the study's own
    (None, None, DEFAULT_CONVENTION),  # else the default
    (None, "brats2023", "brats2023"),
])
def test_segmentation_convention_precedence(tmp_path: Path, own: str | None, explicit: str | None, expected: str) -> None:
    out = save_segmentation(tmp_path / "out.nii.gz", _oblique_segmentation(own), explicit)
    assert read_label_sidecar(out)["convention"] == expected
    assert _saved_values(out) == ({0, 1, 2, 4} if expected == "brats2021" else {0, 1, 2, 3})


def test_segmentation_is_one_noun() -> None:
    from napari_lightseg import types

    assert types.Segmentation is Segmentation
    with pytest.raises(StudyError, match="grid"):
        Segmentation(np.zeros((2, 2, 2), np.uint8), _oblique_segmentation(None).geometry)


def test_writer_keeps_an_existing_file(tmp_path: Path) -> None:
    classes, convention, geometry = load_labels(_seg_file(tmp_path / "in_seg.nii.gz", np.array([1, 2, 4])))
    data, kwargs, _ = labels_layer(classes, geometry, "mask", convention=convention)
    target = tmp_path / "out.nii.gz"
    write_labels(str(target), data, kwargs)
    with pytest.warns(UserWarning, match="out.bak1.nii.gz"):
        write_labels(str(target), np.zeros_like(data), kwargs)
    assert _saved_values(tmp_path / "out.bak1.nii.gz") == {0, 1, 2, 4}
    assert _saved_values(target) == {0}


def test_save_refuses_values_outside_the_classes(tmp_path: Path) -> None:
    classes, _, geometry = load_labels(_seg_file(tmp_path / "in_seg.nii.gz", np.array([1])))
    classes[0, 0, 0] = 7
    with pytest.raises(StudyError, match="out.nii.gz.*7"):
        save_labels(tmp_path / "out.nii.gz", classes, geometry)


def test_distinct_values_equals_unique() -> None:
    """The fast path for label volumes gives exactly ``np.unique``'s answer, and anything else goes to it."""
    from napari_lightseg.io.labels import distinct_values

    rng = np.random.default_rng(0)
    volume = rng.choice(np.array([0, 1, 2, 4], dtype=np.float32), size=(20, 30, 40))
    cases = [volume, volume.astype(np.int16), volume.astype(np.uint8), volume - 1, volume + 0.5, volume * 100,
             np.zeros(0, np.float32), np.array([np.nan, 1.0]), np.array([3, 3, 3], np.uint16), np.array([0, 15, 16]),
             np.array([True, False])]
    for values in cases:
        fast, reference = distinct_values(values), np.unique(values)
        assert fast.dtype == reference.dtype
        assert np.array_equal(fast, reference, equal_nan=True)
