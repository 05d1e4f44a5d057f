"""The synthetic glioma sample: deterministic, all classes present, fast, well-formed, writable."""
from __future__ import annotations

import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_lightseg._sample_data import make_sample_study, sample_glioma, write_sample_case
from napari_lightseg.io import DISPLAY_AXCODES, SEQUENCES, load_study, region_mask
from napari_lightseg.layers import lightseg_metadata


@pytest.fixture(scope="module")
def sample():
    return make_sample_study(0)


def test_generation_time() -> None:
    start = time.perf_counter()
    make_sample_study(5)
    elapsed = time.perf_counter() - start
    assert elapsed < 10, f"sample took {elapsed:.1f} s (target < 3 s)"  # generous: CI machines vary


def test_deterministic_per_seed(sample) -> None:
    again, other = make_sample_study(0), make_sample_study(1)
    for seq in SEQUENCES:
        np.testing.assert_array_equal(again.images[seq], sample.images[seq])
    np.testing.assert_array_equal(again.labels, sample.labels)
    assert not np.array_equal(other.labels, sample.labels)
    assert other.name != sample.name == "sample-glioma-0"


def test_study_is_well_formed(sample) -> None:
    assert sample.missing == []
    assert sample.shape == (155, 240, 240)
    assert sample.geometry.spacing == (1.0, 1.0, 1.0)
    assert nib.aff2axcodes(sample.geometry.affine) == ("L", "P", "S")
    brain = np.any([sample.images[seq] > 0 for seq in SEQUENCES], axis=0)
    assert 1.0e6 < brain.sum() < 2.5e6  # an adult brain, in mm^3
    assert not brain[:, :, :30].any() and not brain[:, :, -30:].any()  # skull-stripped, zero around
    for seq in SEQUENCES:
        image = sample.images[seq]
        assert image.dtype == np.float32 and image.shape == sample.shape
        assert np.array_equal(image, np.rint(image)) and image.min() >= 0 and image.max() < 2000
        assert np.count_nonzero(image[brain]) > 0.999 * brain.sum()  # one brain mask for all sequences
    assert sample.labels.dtype == np.uint8 and sample.labels.shape == sample.shape


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_all_classes_present_inside_the_brain(sample, seed: int) -> None:
    study = sample if seed == 0 else make_sample_study(seed)
    counts = np.bincount(study.labels.ravel(), minlength=4)
    assert set(np.unique(study.labels)) == {0, 1, 2, 3}
    assert counts[1] > 200 and counts[3] > 1000 and counts[2] > counts[3]
    brain = study.images["t1"] > 0
    assert np.all(brain[study.labels > 0])
    # one hemisphere only: the tumour does not cross the midline (L index 119 = MNI x 0)
    columns = np.nonzero(region_mask(study.labels, "WT").any(axis=(0, 1)))[0]
    assert columns.max() < 119 or columns.min() > 119


def test_tissue_contrasts(sample) -> None:
    """The sequences show the tumour classes the way gliomas look (means over each class)."""
    mean = {seq: [float(sample.images[seq][sample.labels == c].mean()) for c in (1, 2, 3)] for seq in SEQUENCES}
    brain = (sample.images["t1"] > 0) & (sample.labels == 0)
    normal = {seq: float(sample.images[seq][brain].mean()) for seq in SEQUENCES}
    ncr, ed, et = 0, 1, 2
    assert mean["t1ce"][et] > 1.3 * normal["t1ce"]  # enhancing rim bright on T1ce
    assert mean["t1ce"][ncr] < mean["t1ce"][et] / 2  # necrosis dark on T1ce
    assert mean["flair"][ed] > 1.5 * normal["flair"]  # edema bright on FLAIR
    assert mean["t2"][ed] > 1.3 * normal["t2"] and mean["t2"][ncr] > mean["t2"][et]
    assert mean["t1"][ncr] < 0.6 * normal["t1"]


def test_sample_layers(sample) -> None:
    layers = sample_glioma()
    images = [layer for layer in layers if layer[2] == "image"]
    labels = [layer for layer in layers if layer[2] == "labels"]
    assert len(images) == 4 and len(labels) == 1
    for data, kwargs, _ in layers:
        assert data.shape == sample.shape
        assert tuple(kwargs["scale"]) == (1.0, 1.0, 1.0)
        meta = lightseg_metadata(kwargs["metadata"])
        assert meta["study"] == "sample-glioma-0" and meta["geometry"] is not None
    assert {lightseg_metadata(k["metadata"])["sequence"] for _, k, _ in images} == set(SEQUENCES)
    assert [k["visible"] for _, k, _ in images].count(True) == 1
    assert all(lo < hi for lo, hi in (k["contrast_limits"] for _, k, _ in images))
    assert set(np.unique(labels[0][0])) == {0, 1, 2, 3}
    np.testing.assert_array_equal(labels[0][0], sample.labels)


@pytest.mark.parametrize(("naming", "seg_values"), [("brats2021", {0, 1, 2, 4}), ("brats2023", {0, 1, 2, 3})])
def test_written_case_round_trips(tmp_path: Path, sample, naming: str, seg_values: set[int]) -> None:
    case = write_sample_case(tmp_path, seed=0, naming=naming)
    names = sorted(p.name for p in case.iterdir())
    suffixes = ["_flair", "_seg", "_t1", "_t1ce", "_t2"] if naming == "brats2021" else ["-seg", "-t1c", "-t1n", "-t2f", "-t2w"]
    assert names == [f"sample-glioma-0{s}.nii.gz" for s in suffixes]
    seg = next(p for p in case.iterdir() if "seg" in p.name)
    assert set(np.unique(np.asarray(nib.load(str(seg)).dataobj)).tolist()) == seg_values
    loaded = load_study(case)
    assert loaded.name == "sample-glioma-0" and loaded.convention == naming
    for seq in SEQUENCES:
        np.testing.assert_array_equal(loaded.images[seq], sample.images[seq])
    np.testing.assert_array_equal(loaded.labels, sample.labels)
    np.testing.assert_array_equal(loaded.geometry.affine, sample.geometry.affine)
    assert loaded.geometry.display_shape == sample.shape
    assert DISPLAY_AXCODES == ("S", "P", "L")
