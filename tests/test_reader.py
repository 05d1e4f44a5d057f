"""The npe2 reader: which paths it takes, masks open as Labels whatever their name, napari's reader preference."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_lightseg._reader import (
    NIFTI_INTENT_LABEL,
    PLUGIN_NAME,
    get_reader,
    label_value_set,
    prefer_for_case_folders,
    prefer_lightseg_reader,
    read_study,
)
from napari_lightseg.io import StudyError
from napari_lightseg.io.labels import label_sidecar, sidecar_path

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (12, 14, 10)


def _labels(brats_values: tuple[int, ...] = (1, 2, 4)) -> np.ndarray:
    data = np.zeros(SHAPE, np.int16)
    for i, value in enumerate(brats_values):
        data[2 + 3 * i: 4 + 3 * i, 3:9, 2:8] = value
    return data


def _write(path: Path, data: np.ndarray, intent: int | None = None) -> Path:
    img = nib.Nifti1Image(data, np.diag([-1.0, -1.0, 1.0, 1.0]))  # LPS, as BraTS
    if intent is not None:
        img.header.set_intent(intent)
    nib.save(img, str(path))
    return path


def _one_layer(path: Path):
    layers = read_study(str(path))
    assert len(layers) == 1
    return layers[0]


@pytest.mark.parametrize("name", ["seg_unet.nii.gz", "x.nii.gz", "unet_flair_out.nii", "prediction.nii.gz"])
def test_a_mask_opens_as_labels_whatever_its_name(tmp_path: Path, name: str) -> None:
    data, kwargs, kind = _one_layer(_write(tmp_path / name, _labels()))
    assert kind == "labels"
    assert set(np.unique(data)) == {0, 1, 2, 3}  # 1/2/4 -> internal NCR/ED/ET
    assert int(data.sum()) == (1 + 2 + 3) * 2 * 6 * 6
    assert kwargs["features"]["class"][3] == "ET"
    assert kwargs["metadata"]["lightseg"]["convention"] == "brats2021"


def test_an_image_stays_an_image(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 800, SHAPE).astype(np.int16)
    _, _, kind = _one_layer(_write(tmp_path / "x.nii.gz", image))
    assert kind == "image"
    assert label_value_set(image.astype(np.float32)) is None
    assert label_value_set(np.full(SHAPE, 7.0, np.float32)) is None  # integers, but not in 0..4
    assert label_value_set(np.full(SHAPE, 0.5, np.float32)) is None


def test_the_intent_code_decides_before_the_values(tmp_path: Path) -> None:
    """A LABEL intent with values outside any convention is a mask with a clear error, not a grey image."""
    data = _labels()
    data[0, 0, 0] = 9
    path = _write(tmp_path / "scores.nii.gz", data, intent=NIFTI_INTENT_LABEL)
    with pytest.raises(StudyError, match="scores.nii.gz.*9"):
        read_study(str(path))
    _, _, kind = _one_layer(_write(tmp_path / "plain.nii.gz", data))  # without the intent: an image
    assert kind == "image"


def test_the_sidecar_decides_first(tmp_path: Path) -> None:
    path = _write(tmp_path / "mask.nii.gz", _labels((1, 2, 3)))
    sidecar_path(path).write_text(json.dumps(label_sidecar("brats2021")))  # says 1/2/4: a 3 is wrong
    with pytest.raises(StudyError, match="mask.nii.gz.*3"):
        read_study(str(path))
    sidecar_path(path).write_text(json.dumps(label_sidecar("brats2023")))
    data, kwargs, kind = _one_layer(path)
    assert kind == "labels" and set(np.unique(data)) == {0, 1, 2, 3}
    assert kwargs["metadata"]["lightseg"]["convention"] == "brats2023"


def test_get_reader_choice(tmp_path: Path) -> None:
    case = tmp_path / "case"
    case.mkdir()
    nifti = _write(case / "case_flair.nii.gz", np.ones(SHAPE, np.int16))
    assert get_reader(str(case)) is read_study
    assert get_reader(str(nifti)) is read_study
    assert get_reader([str(nifti), str(nifti)]) is read_study
    empty = tmp_path / "dicom_or_other"
    empty.mkdir()
    (empty / "IM0001").write_bytes(b"\0" * 10)
    assert get_reader(str(empty)) is None  # later: a DICOM reader
    (tmp_path / "x.tif").write_bytes(b"II*\0")
    assert get_reader(str(tmp_path / "x.tif")) is None
    assert get_reader(str(tmp_path / "missing.nii.gz")) is None


def test_manifest_claims_nifti_only() -> None:
    """A "*" pattern claimed every file: napari then asked for every .tif too."""
    text = (ROOT / "napari_lightseg" / "napari.yaml").read_text()
    assert 'filename_patterns: ["*.nii", "*.nii.gz"]' in text and "accepts_directories: true" in text


def test_reader_preference_is_set_but_never_overrides(tmp_path: Path) -> None:
    from napari.settings import NapariSettings

    settings = NapariSettings(config_path=None)  # not the user's file
    settings.plugins.extension2reader = {"*.nii": "someone-else"}
    assert prefer_lightseg_reader(settings) == ["*.nii.gz"]
    assert settings.plugins.extension2reader == {"*.nii": "someone-else", "*.nii.gz": PLUGIN_NAME}
    assert prefer_lightseg_reader(settings) == []
    pattern = prefer_for_case_folders(tmp_path, settings)
    assert pattern is not None and settings.plugins.extension2reader[pattern] == PLUGIN_NAME
    from fnmatch import fnmatch

    assert fnmatch(str((tmp_path / "case1").resolve()) + "/", pattern)
    assert not fnmatch(str(tmp_path.resolve().parent / "other") + "/", pattern)
