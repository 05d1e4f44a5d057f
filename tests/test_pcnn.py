"""PCNN core, segmentation, detection and the detection report (synthetic data; real cases optional)."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from skimage.filters import threshold_otsu

from napari_lightseg.io import Geometry, Study
from napari_lightseg.metrics import dice
from napari_lightseg.pcnn import SPCNNParameters, detect, detection_report, run_pcnn, run_spcnn, segment
from napari_lightseg.pcnn.detect import patch_signatures


def synthetic_images(shape=(40, 64, 64), centre=(22, 24, 40), radius=7, seed=0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """An ellipsoid 'brain' of noisy tissue with a bright spherical 'tumour' in FLAIR and T2."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape, dtype=np.float32)
    c = np.array(shape, dtype=np.float32) / 2
    brain = ((z - c[0]) / (c[0] - 2)) ** 2 + ((y - c[1]) / (c[1] - 4)) ** 2 + ((x - c[2]) / (c[2] - 4)) ** 2 <= 1
    tumour = ((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius ** 2) & brain
    images = {}
    for name, level in (("flair", 300.0), ("t1", 200.0), ("t1ce", 220.0), ("t2", 250.0)):
        img = rng.normal(100.0, 10.0, shape).astype(np.float32)
        if name in ("flair", "t2"):
            img[tumour] += level
        images[name] = np.where(brain, img, 0).astype(np.float32)
    return images, tumour


def make_study(images: dict[str, np.ndarray], affine: np.ndarray, name: str = "synthetic") -> Study:
    """A Study whose display arrays are ``images``; the file grid follows ``affine``."""
    disk_shape = images["flair"].shape  # placeholder to build the geometry, fixed below
    geometry = Geometry.from_image(nib.Nifti1Image(np.zeros(disk_shape, np.float32), affine))
    # re-derive the disk shape that maps to this display shape
    disk = geometry.to_disk(images["flair"])
    geometry = Geometry.from_image(nib.Nifti1Image(disk, affine))
    assert geometry.display_shape == images["flair"].shape
    return Study(name, images, geometry)


def test_bright_square_fires_before_dim_one():
    img = np.zeros((32, 32), np.float32)
    img[4:12, 4:12] = 1.0
    img[20:28, 20:28] = 0.4
    img += 0.05
    params = SPCNNParameters.from_image(img)
    result = run_spcnn(img, params, iterations=10)
    bright, dim = result.first_fire[0, 6, 6], result.first_fire[0, 24, 24]
    assert 0 < bright < (dim if dim > 0 else 99)
    classic = run_pcnn(img, iterations=10)
    assert 0 < classic.first_fire[0, 6, 6] <= (classic.first_fire[0, 24, 24] or 99)


def test_identical_patches_identical_signatures():
    rng = np.random.default_rng(1)
    patch = rng.random((10, 10)).astype(np.float32)
    img = np.zeros((2, 40, 40), np.float32)
    img[0, 5:15, 5:15] = patch
    img[1, 22:32, 18:28] = patch
    params = SPCNNParameters.from_image(img, img > 0)
    pulses = run_spcnn(img, params, iterations=8, keep_pulses=True).pulses
    a = patch_signatures(pulses[:, 0], np.array([[5, 5, 14, 14]]))
    b = patch_signatures(pulses[:, 1], np.array([[22, 18, 31, 27]]))
    np.testing.assert_array_equal(a, b)
    assert a.sum() > 0


def test_automatic_parameters_follow_chen_2011():
    img = np.linspace(0.05, 1.0, 400, dtype=np.float32).reshape(20, 20) ** 2
    p = SPCNNParameters.from_image(img)
    sigma, smax, s = float(img.std()), float(img.max()), float(threshold_otsu(img))
    af = np.log(1 / sigma)
    beta = (smax / s - 1) / 6
    ve = np.exp(-af) + 1 + 6 * beta
    ae = np.log(ve / (s * (1 - np.exp(-3 * af)) / (1 - np.exp(-af)) + 6 * beta * s * np.exp(-af)))
    assert p.alpha_f == pytest.approx(af) and p.beta == pytest.approx(beta)
    assert p.v_e == pytest.approx(ve) and p.alpha_e == pytest.approx(ae)
    # the design goal: an isolated neuron at the Otsu level S' has U[3] = V_E e^-ae exactly
    u3 = s * (1 + np.exp(-af) + np.exp(-2 * af)) + 6 * beta * s * np.exp(-af)
    assert u3 == pytest.approx(ve * np.exp(-p.alpha_e))


def test_segment_synthetic_tumour():
    images, tumour = synthetic_images()
    study = make_study(images, np.diag([-1.0, -1.0, 1.0, 1.0]))
    labels = segment(study)
    assert labels.dtype == np.uint8 and labels.shape == tumour.shape
    assert set(np.unique(labels)) <= {0, 2, 3}
    assert dice(labels > 0, tumour) > 0.8


def test_detect_finds_synthetic_tumour():
    images, tumour = synthetic_images()
    study = make_study(images, np.diag([-1.0, -1.0, 1.0, 1.0]))
    detection = detect(study)
    assert detection.found and detection.slice_boxes
    assert detection.contains(np.argwhere(tumour).mean(0))


@pytest.mark.parametrize("affine", [np.diag([-1.0, -1.0, 1.0, 1.0]), np.diag([1.0, 1.0, 1.0, 1.0])], ids=["LPS", "RAS"])
def test_detection_report_schema_and_disk_order(affine):
    images, tumour = synthetic_images()
    study = make_study(images, affine)
    detection = detect(study)
    rep = detection_report(study, detection)
    assert set(rep) >= {"box3d_voxel", "box3d_world", "slice_boxes", "case"}
    lo, hi = rep["box3d_voxel"]
    assert all(isinstance(v, int) for v in lo + hi) and all(a <= b for a, b in zip(lo, hi))
    # inclusive, in the file's own array order: the tumour centroid in disk order lies inside
    disk_tumour = study.geometry.to_disk(tumour.astype(np.uint8)) > 0
    centroid = np.argwhere(disk_tumour).mean(0)
    assert all(a <= c <= b for a, c, b in zip(lo, centroid, hi))
    # world box = affine of the voxel box corners
    wlo, whi = np.array(rep["box3d_world"])
    corners = np.array([[i, j, k, 1.0] for i in (lo[0], hi[0]) for j in (lo[1], hi[1]) for k in (lo[2], hi[2])])
    world = corners @ affine.T
    np.testing.assert_allclose(wlo, world[:, :3].min(0))
    np.testing.assert_allclose(whi, world[:, :3].max(0))
    for box in rep["slice_boxes"]:
        assert {"z", "y0", "x0", "y1", "x1", "distance"} <= set(box)


def test_real_case_dice(data_root):
    from napari_lightseg.io import load_study

    study = load_study(data_root / "brats18" / "Brats18_TCIA02_135_1")
    labels = segment(study)
    assert dice(labels > 0, study.labels > 0) > 0.7


def test_slice_window_removes_slow_drift():
    """With slice_window, a brightness ramp along the slices no longer reads as hyperintensity."""
    from napari_lightseg.pcnn.segment import MIN_SLICE_BRAIN_VOXELS, robust_z

    side = int(np.ceil(np.sqrt(MIN_SLICE_BRAIN_VOXELS))) + 2
    rng = np.random.default_rng(0)
    image = (100 + rng.standard_normal((40, side, side))).astype(np.float32)
    image += np.linspace(0, 30, 40, dtype=np.float32)[:, None, None]  # slow inferior-superior drift
    brain = np.ones(image.shape, bool)
    global_z, local_z = robust_z(image, brain), robust_z(image, brain, slice_window=9)
    assert global_z[-1].mean() > 0.8  # the bright end looks hyperintense with one global median
    assert abs(local_z[-1].mean()) < 0.2


def test_bright_posterior_fossa_does_not_capture_the_choice(data_root):
    """TCGA-FG-6692: its bright (bilateral) posterior fossa is larger than the tumour; the
    asymmetry ranking picks the tumour (WT Dice vs the algorithm fusion, was 0.35 by size)."""
    from napari_lightseg.io import load_labels, load_study

    folder = data_root / "other" / "TCGA-FG-6692"
    study = load_study(folder)
    fusion = load_labels(folder / "segmentations" / "fusion_mav.nii.gz", study.geometry)[0]
    assert dice(segment(study) > 0, fusion > 0) > 0.7


def test_midline_of_an_off_centre_brain():
    from napari_lightseg.pcnn.segment import midline

    brain = np.zeros((4, 10, 50), bool)
    brain[:, :, 11:30] = True  # symmetric about x = 20
    assert midline(brain) == 20.0


def test_cards_validation_blocks_are_the_benchmark_results():
    """No PCNN number in a card is hand-written: the blocks equal benchmarks/results_pcnn.json."""
    import json
    from pathlib import Path

    from napari_lightseg.models.cards import get_card

    results = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results_pcnn.json").read_text())
    for name in ("pcnn-wt", "pcnn-wt-et"):
        card = get_card(name)
        assert card.validation == results["cards"][name]["validation"]
        for key, value in results["cards"][name]["extra"].items():
            assert card.extra[key] == value
