"""The plugin inside napari: manifest, reader, writer and sample through npe2 (viewer tests need Qt)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CASE = "brats18/Brats18_TCIA01_201_1"


def test_top_level_manifest_is_the_package_one() -> None:
    top = ROOT / "napari.yaml"
    assert top.is_symlink()
    assert top.resolve() == (ROOT / "napari_lightseg" / "napari.yaml").resolve()


def test_manifest_validates_with_imports() -> None:
    """Every contributed command must import (catches a renamed module or function)."""
    result = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-lightseg", "--imports"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _check_study_layers(layers, shape: tuple[int, int, int]) -> None:
    images = [layer for layer in layers if layer._type_string == "image"]
    labels = [layer for layer in layers if layer._type_string == "labels"]
    assert len(images) == 4 and len(labels) == 1
    for layer in [*images, *labels]:
        assert layer.data.shape == shape
        np.testing.assert_allclose(layer.scale, images[0].scale)
        np.testing.assert_allclose(layer.translate, images[0].translate)
    assert set(np.unique(labels[0].data)) == {0, 1, 2, 3}


@pytest.mark.viewer
def test_open_real_case(make_napari_viewer, data_root: Path, tmp_path: Path) -> None:
    viewer = make_napari_viewer()
    layers = viewer.open(str(data_root / CASE), plugin="napari-lightseg")
    _check_study_layers(layers, (155, 240, 240))
    assert [layer for layer in viewer.layers if layer.visible and layer._type_string == "image"][0].name.endswith("FLAIR")

    # the writer puts the mask back in the source file's grid and label values
    labels = next(layer for layer in layers if layer._type_string == "labels")
    out = tmp_path / "seg.nii.gz"
    labels.save(str(out), plugin="napari-lightseg")
    source = nib.load(str(data_root / CASE / f"{Path(CASE).name}_seg.nii.gz"))
    saved = nib.load(str(out))
    np.testing.assert_array_equal(np.asarray(saved.dataobj), np.asarray(source.dataobj))
    np.testing.assert_array_equal(saved.affine, source.affine)


@pytest.mark.viewer
def test_open_sample(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    layers = viewer.open_sample("napari-lightseg", "glioma")
    _check_study_layers(layers, (155, 240, 240))
    assert all(layer.name.startswith("sample-glioma-0") for layer in layers)


@pytest.mark.viewer
def test_drop_a_mask_with_any_name_opens_it_as_labels_without_asking(make_napari_viewer, tmp_path: Path) -> None:
    """napari's builtins also claim *.nii.gz: without the preference, opening with no plugin named (as a
    drag-and-drop does) raises MultipleReaderError, which the GUI turns into its "Choose reader" dialog."""
    from napari.errors import MultipleReaderError

    from napari_lightseg._reader import PLUGIN_NAME, prefer_lightseg_reader

    viewer = make_napari_viewer()  # fresh settings: no preference yet
    data = np.zeros((10, 12, 8), np.int16)
    data[3:6, 4:8, 2:5] = 4
    path = tmp_path / "prediction_unet.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    with pytest.raises(MultipleReaderError):
        viewer.open(str(path), plugin=None)
    from napari.settings import get_settings

    assert prefer_lightseg_reader() == ["*.nii", "*.nii.gz"]
    try:
        assert get_settings().plugins.extension2reader["*.nii.gz"] == PLUGIN_NAME
        layers = viewer.open(str(path), plugin=None)
    finally:
        get_settings().plugins.extension2reader = {}  # leave the shared settings file as napari's fixture left it
    assert [layer._type_string for layer in layers] == ["labels"]
    assert set(np.unique(layers[0].data)) == {0, 3} and layers[0].features["class"][3] == "ET"
