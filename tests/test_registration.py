"""Co-registration, resampling and world-space grids (preprocess.registration, io.grids, load_nifti_study)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from clinical_grids import (
    GRIDS,
    MOTIONS,
    ClinicalGrid,
    center_of,
    euler,
    landmarks,
    perturb,
    perturbed_volumes,
    read_sitk,
    target_registration_error,
)

from napari_lightseg.clinical import load_nifti_study, save_mask_file
from napari_lightseg.io import SEQUENCES, Geometry, Segmentation, StudyError, load_study
from napari_lightseg.io.grids import (
    array_in_geometry,
    describe_grid_difference,
    geometry_from_sitk,
    grid_difference,
    same_physical_grid,
    sitk_from_array,
)
from napari_lightseg.io.labels import read_label_sidecar
from napari_lightseg.io.naming import discover
from napari_lightseg.io.series import SeriesVolume
from napari_lightseg.metrics import dice
from napari_lightseg.preprocess.registration import (
    DEFAULT_SETTINGS,
    _register_all,
    align_study,
    labels_onto_study,
    labels_to_native,
    register_rigid,
)
from napari_lightseg.progress import Cancelled

SHAPE = (9, 8, 7)
RAS = np.array([[1.2, 0, 0, -30.0], [0, 0.9, 0, -40.0], [0, 0, 2.0, -5.0], [0, 0, 0, 1]])
CASE = "Brats18_2013_20_1"  # a validation case (no model trained on it), unet-int8 WT Dice 0.925


def _nifti(data: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    img = nib.Nifti1Image(data, affine)
    img.set_sform(affine, code="scanner")
    img.set_qform(affine, code="scanner")
    return img


def _reordered(data: np.ndarray, affine: np.ndarray, flips: tuple[int, ...], order: tuple[int, int, int]):
    """The same physical grid stored in another voxel order: flip then transpose array axes, fix the affine."""
    affine = affine.copy()
    for axis in flips:
        data = np.flip(data, axis)
        affine[:3, 3] += affine[:3, axis] * (data.shape[axis] - 1)
        affine[:3, axis] *= -1
    data = np.ascontiguousarray(data.transpose(order))
    affine[:3, :3] = affine[:3, list(order)]
    return data, affine


# ------------------------------------------------------------------ world-space grids
def test_same_grid_in_another_voxel_order_is_the_same_physical_grid() -> None:
    data = np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE)
    flipped, lps = _reordered(data, RAS, (0, 1), (0, 1, 2))  # RAS -> LPS order
    permuted, other = _reordered(data, RAS, (2,), (2, 0, 1))
    a = Geometry.from_image(_nifti(data, RAS))
    for moved, affine in ((flipped, lps), (permuted, other)):
        b = Geometry.from_image(_nifti(moved, affine))
        assert not a.same_grid(b)  # the old check refused these
        assert same_physical_grid(a, b) and same_physical_grid(b, a)
        assert np.array_equal(b.to_display(moved), a.to_display(data))  # exact, no interpolation
        # and the same answer through SimpleITK images
        assert same_physical_grid(sitk_from_array(data, a), sitk_from_array(moved, b))


def test_different_grids_are_described_in_mm_and_degrees() -> None:
    a = Geometry.from_image(_nifti(np.zeros(SHAPE, np.float32), RAS))
    shifted = RAS.copy()
    shifted[0, 3] += 2.0
    b = Geometry.from_image(_nifti(np.zeros(SHAPE, np.float32), shifted))
    assert not same_physical_grid(a, b)
    d = grid_difference(a, b)
    assert d["corner_shift_mm"] == pytest.approx(2.0) and d["rotation_deg"] == pytest.approx(0.0, abs=1e-6)
    # a half-voxel shift below the tolerance is still the same grid; 1e-2 mm is not
    tiny = RAS.copy()
    tiny[1, 3] += 5e-4
    assert same_physical_grid(a, Geometry.from_image(_nifti(np.zeros(SHAPE, np.float32), tiny)))
    tiny[1, 3] += 1e-2
    assert not same_physical_grid(a, Geometry.from_image(_nifti(np.zeros(SHAPE, np.float32), tiny)))
    image = sitk_from_array(np.zeros(SHAPE, np.float32), a)
    tilted = sitk.Image(image)
    tilted.SetDirection(tuple((np.asarray(euler((0, 0, 3.0), (0, 0, 0), (0, 0, 0)).GetMatrix()).reshape(3, 3)
                               @ np.asarray(image.GetDirection()).reshape(3, 3)).ravel()))
    assert grid_difference(image, tilted)["rotation_deg"] == pytest.approx(3.0, abs=1e-6)
    text = describe_grid_difference(image, tilted)
    assert "mm" in text and "3 degrees" in text and "\n" not in text


def test_geometry_from_sitk_matches_nibabel() -> None:
    """A SimpleITK image's Geometry equals the Geometry nibabel reads from the NIfTI SimpleITK writes."""
    data = np.random.default_rng(0).random(SHAPE).astype(np.float32)
    geometry = Geometry.from_image(_nifti(data, RAS))
    image = sitk_from_array(data, geometry)
    made = geometry_from_sitk(image)
    np.testing.assert_allclose(made.affine, RAS, atol=1e-6)
    assert made.disk_shape == SHAPE and np.array_equal(made.ornt, geometry.ornt)
    assert int(made.header["sform_code"]) == 1 and np.allclose(made.header.get_sform(), RAS, atol=1e-6)
    assert np.array_equal(made.to_display(array_in_geometry(image)), geometry.to_display(data))


# ------------------------------------------------------------------ load_study / load_nifti_study on mixed grids
def _write_study(folder: Path, images: dict[str, tuple[np.ndarray, np.ndarray]], suffix: str = ".nii") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for seq, (data, affine) in images.items():
        nib.save(_nifti(data, affine), str(folder / f"c_{seq}{suffix}"))
    return folder


def test_ras_and_lps_files_of_one_grid_are_reoriented_bit_identical(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    arrays = {seq: rng.integers(0, 500, SHAPE).astype(np.int16) for seq in SEQUENCES}
    plain = load_study(_write_study(tmp_path / "ras", {s: (a, RAS) for s, a in arrays.items()}))
    mixed = {s: (a, RAS) for s, a in arrays.items()}
    mixed["t1"] = _reordered(arrays["t1"], RAS, (0, 1), (0, 1, 2))  # LPS voxel order
    mixed["t2"] = _reordered(arrays["t2"], RAS, (1,), (1, 2, 0))
    study = load_study(_write_study(tmp_path / "mixed", mixed))
    for seq in SEQUENCES:
        assert np.array_equal(study.images[seq], plain.images[seq]), seq
    assert study.geometry.same_grid(plain.geometry) and not study.alignment  # reoriented, never registered


def test_truly_different_grid_is_refused_with_mm_and_degrees(tmp_path: Path) -> None:
    moved = RAS.copy()
    moved[2, 3] += 3.0
    folder = _write_study(tmp_path, {"flair": (np.zeros(SHAPE, np.int16), RAS), "t1": (np.zeros(SHAPE, np.int16), moved)})
    with pytest.raises(StudyError) as info:
        load_study(folder)
    message = str(info.value)
    assert "c_flair.nii" in message and "c_t1.nii" in message and "3 mm" in message and "degrees" in message
    assert "\n" not in message


def _blob_sitk(spacing=(1.0, 1.0, 1.0), size=(48, 52, 40)) -> sitk.Image:
    """A smooth synthetic head: an ellipsoid with off-centre blobs (asymmetric, so motion is defined)."""
    z, y, x = np.indices(size[::-1], dtype=np.float32)
    c = np.array(size[::-1]) / 2
    head = ((z - c[0]) / 15) ** 2 + ((y - c[1]) / 20) ** 2 + ((x - c[2]) / 17) ** 2 < 1
    data = 100 * head + 40 * (x / size[0]) * head
    for (dz, dy, dx), r2, value in (((4, -6, 5), 30, 150), ((-6, 8, -4), 12, 80), ((0, 2, -9), 20, -50), ((7, 10, 8), 8, 120)):
        data += value * (((z - c[0] - dz) ** 2 + (y - c[1] - dy) ** 2 + (x - c[2] - dx) ** 2) < r2)
    image = sitk.GetImageFromArray(data.astype(np.float32))
    image.SetSpacing(spacing)
    image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))  # LPS-stored like BraTS
    image.SetOrigin((24.0, 26.0, -20.0))
    return sitk.SmoothingRecursiveGaussian(image, 1.0)


def test_mixed_grid_nifti_folder_opens_through_load_nifti_study(tmp_path: Path) -> None:
    """Sequences on their own grids (thick slices, tilted, moved) as NIfTI files: aligned onto T1ce's grid."""
    base = _blob_sitk()
    grids = {"flair": ClinicalGrid(spacing=(1.0, 1.0, 3.0)), "t1": ClinicalGrid(tilt_deg=(0, 0, 3.0), shift_mm=(4, 0, 0)),
             "t1ce": ClinicalGrid(), "t2": ClinicalGrid(spacing=(0.8, 0.8, 2.0), size=(64, 64, 22))}
    motion = euler((0.0, 0.0, 3.0), (2.0, -2.0, 1.0), center_of(base))
    for seq, grid in grids.items():
        sitk.WriteImage(perturb(base, grid, motion if seq == "t2" else None), str(tmp_path / f"c_{seq}.nii"))
    with pytest.raises(StudyError, match="one-grid studies only"):
        load_study(tmp_path)
    study = load_nifti_study(tmp_path)
    assert study.reference == "t1ce" and set(study.alignment) == set(SEQUENCES)
    t1ce = Geometry.from_image(nib.load(tmp_path / "c_t1ce.nii"))
    assert study.geometry.same_grid(t1ce) and study.shape == t1ce.display_shape
    assert not study.alignment["t1ce"].registered and study.alignment["t2"].registered
    assert set(study.timings_s) >= {"read", "register", "resample"}
    reference = study.images["t1ce"]
    brain = reference > 50
    for seq in ("flair", "t1", "t2"):  # each aligned sequence matches the reference image inside the head
        error = np.abs(study.images[seq] - reference)[brain].mean()
        assert error < 0.1 * reference[brain].mean(), (seq, error)
    # the t2's content was moved: registration recovers it (the issue's 1.5 mm, on a small coarse phantom)
    points = landmarks(read_sitk(tmp_path / "c_t1ce.nii"))
    before = target_registration_error(sitk.Euler3DTransform(), motion, points)
    tre = target_registration_error(study.alignment["t2"].transform, motion, points)
    assert before.max() > 3.0 and tre.max() < 1.5


def test_save_labels_native_keeps_each_source_grid(tmp_path: Path) -> None:
    base = _blob_sitk()
    grids = {"flair": ClinicalGrid(spacing=(1.0, 1.0, 3.0)), "t1": ClinicalGrid(), "t1ce": ClinicalGrid(),
             "t2": ClinicalGrid(tilt_deg=(0, 0, 3.0))}
    for seq, grid in grids.items():
        sitk.WriteImage(perturb(base, grid), str(tmp_path / f"c_{seq}.nii"))
    study = load_nifti_study(tmp_path, register=False)
    assert not any(r.registered for r in study.alignment.values())  # register=False: the scanner's coordinates only
    labels = np.where(study.images["t1ce"] > 150, 3, np.where(study.images["t1ce"] > 50, 2, 0)).astype(np.uint8)
    mask = Segmentation(labels, study.geometry)
    out = tmp_path / "out"
    out.mkdir()
    for seq in grids:
        path = save_mask_file(out / f"seg_{seq}.nii.gz", mask, study, grid=seq, convention="brats2021")
        written, source = nib.load(path), nib.load(tmp_path / f"c_{seq}.nii")
        assert written.shape == source.shape and np.array_equal(written.affine, source.affine)
        assert np.array_equal(written.header.get_sform(), source.header.get_sform())
        values = set(np.unique(np.asarray(written.dataobj)).tolist())
        assert values <= {0, 2, 4} and {2, 4} <= values
        sidecar = read_label_sidecar(path)
        assert sidecar is not None and sidecar["convention"] == "brats2021" and sidecar["grid"] == seq
    # the reference grid round trip is exact
    back = Geometry.from_image(nib.load(out / "seg_t1ce.nii.gz")).to_display(np.asarray(nib.load(out / "seg_t1ce.nii.gz").dataobj))
    assert np.array_equal(back, np.where(labels == 3, 4, labels))
    with pytest.raises(StudyError, match="exists"):
        save_mask_file(out / "seg_t1.nii.gz", mask, study, grid="t1")
    with pytest.raises(StudyError, match="input"):
        save_mask_file(tmp_path / "c_t1.nii", mask, study, grid="t1", overwrite=True)
    assert json.loads((out / "seg_t1.labels.json").read_text())["source"].endswith("c_t1.nii")
    elsewhere = study.geometry.affine.copy()
    elsewhere[:3, 3] += 12.0  # the same shape, 12 mm away: another study's grid
    stray = Segmentation(labels, dataclasses.replace(study.geometry, affine=elsewhere))
    with pytest.raises(StudyError, match="another grid"):
        save_mask_file(out / "stray.nii.gz", stray, study)
    assert not (out / "stray.nii.gz").exists()


def test_register_rigid_stops_when_cancelled() -> None:
    base = _blob_sitk()
    moving = perturb(base, ClinicalGrid(), euler((0, 0, 4.0), (3, 0, 0), center_of(base)))
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        register_rigid(base, moving, cancel=cancel)
    assert len(calls) < 10  # it stopped right away, not after the whole optimisation


def test_registration_is_reproducible_and_concurrent_runs_agree() -> None:
    """The same pair gives the same transform every time, whatever ITK's thread setting (a multi-threaded Mattes
    metric sums in a different order each run: the same study gave masks hundreds of voxels apart), and the
    sequences registered side by side in ``align_study`` get exactly what one at a time gets."""
    base = _blob_sitk()
    moving = {f"m{i}": perturb(base, ClinicalGrid(), euler((0, 1.0 * i, 3.0), (2, -1, i), center_of(base)))
              for i in range(3)}
    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(2)
    try:
        one_by_one = {k: register_rigid(base, m)[0].GetParameters() for k, m in moving.items()}
        assert all(register_rigid(base, m)[0].GetParameters() == one_by_one[k] for k, m in moving.items())
        together = _register_all(base, moving, DEFAULT_SETTINGS, [0, 1, 2], 3, None, None)
        assert {k: t.GetParameters() for k, (t, _) in together.items()} == one_by_one
        assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 2  # put back after the registrations
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)


def test_side_by_side_registrations_stop_on_cancel() -> None:
    base = _blob_sitk()
    moving = {f"m{i}": perturb(base, ClinicalGrid(), euler((0, 0, 2.0 + i), (2, 0, 0), center_of(base))) for i in range(3)}
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 5

    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    with pytest.raises(Cancelled):
        _register_all(base, moving, DEFAULT_SETTINGS, [0, 1, 2], 3, None, cancel)
    assert len(calls) < 30  # every registration stopped at its next iteration, none ran to the end
    assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == before


def test_align_study_identical_grids_are_not_registered() -> None:
    base = _blob_sitk()
    volumes = {seq: SeriesVolume(sitk.Image(base), f"{seq}.nii", sequence=seq) for seq in SEQUENCES}
    study = align_study(volumes, "t1ce")
    assert not any(r.registered or r.reoriented for r in study.alignment.values())
    assert all(np.array_equal(study.images[s], study.images["t1ce"]) for s in SEQUENCES)


# ------------------------------------------------------------------ real cases
@pytest.fixture(scope="module")
def real_case(data_root: Path):
    files = discover(data_root / "brats18" / CASE)
    return files, *perturbed_volumes(files.sequences)


@pytest.mark.slow
def test_registration_recovers_patient_motion_on_a_real_case(real_case) -> None:
    files, volumes, truths = real_case
    fixed = volumes["t1ce"].image
    points = landmarks(fixed)
    for seq in ("flair", "t2"):
        before = target_registration_error(sitk.Euler3DTransform(), truths[seq], points)
        transform, info = register_rigid(fixed, volumes[seq].image)
        tre = target_registration_error(transform, truths[seq], points)
        assert before.max() > 8.0 and tre.max() < 1.5, (seq, tre.max(), info)
        assert np.isfinite(info["metric"]) and info["iterations"] > 0


@pytest.mark.slow
def test_labels_to_native_round_trip_on_a_real_label_map(real_case) -> None:
    files, volumes, truths = real_case
    study = align_study({s: volumes[s] for s in ("t1ce", "t1", "t2")}, "t1ce", register=False)
    truth = load_study(files).labels  # T1ce keeps the case's own grid
    for seq, expected in (("t1", 0.95), ("t2", 0.95)):
        native = labels_to_native(truth, study, seq)
        assert native.GetSize() == volumes[seq].image.GetSize() and native.GetPixelID() == sitk.sitkUInt8
        back = labels_onto_study(array_in_geometry(native), study.alignment[seq].geometry, study)
        score = dice(back > 0, truth > 0)
        assert score > expected, (seq, score)


@pytest.mark.slow
def test_save_labels_native_for_a_series_without_a_nifti_file(real_case, tmp_path: Path) -> None:
    """A sequence known only as a SimpleITK image (a DICOM series): the mask's affine comes from its geometry."""
    files, volumes, truths = real_case
    study = align_study({s: volumes[s] for s in ("t1ce", "t2")}, "t1ce", register=False)
    truth = load_study(files).labels
    path = save_mask_file(tmp_path / "seg_t2.nii.gz", Segmentation(truth, study.geometry, "brats2023"), study, grid="t2")
    written = nib.load(path)
    expected = geometry_from_sitk(volumes["t2"].image)
    assert written.shape == volumes["t2"].image.GetSize()
    np.testing.assert_allclose(written.affine, expected.affine, atol=1e-4)
    native = labels_to_native(truth, study, "t2")
    assert np.array_equal(np.asarray(written.dataobj), array_in_geometry(native))  # brats2023 keeps 1/2/3
    assert read_label_sidecar(path)["convention"] == "brats2023"


@pytest.mark.slow
def test_perturbed_real_case_segments_as_well_as_the_original(real_case) -> None:
    """The issue's acceptance test: each sequence on its own clinical grid + motion, unet-int8 through
    engine.run: WT Dice (reference grid) at least 0.9 x the Dice on the unperturbed study."""
    from napari_lightseg.engine import run
    from napari_lightseg.models import get_card

    files, volumes, truths = real_case
    card = get_card("unet-int8")
    original = load_study(files)
    truth = original.labels > 0
    baseline = dice(run(original, card).labels > 0, truth)
    study = align_study(volumes, "t1ce")
    assert all(study.alignment[s].registered for s in ("flair", "t1", "t2"))
    assert study.shape == original.shape
    perturbed = dice(run(study, card).labels > 0, truth)
    print(f"WT Dice unperturbed {baseline:.3f}, perturbed + aligned {perturbed:.3f}; timings {study.timings_s}")
    assert baseline > 0.85 and perturbed >= 0.9 * baseline


def test_clinical_grids_differ_from_the_reference() -> None:
    """The generator really produces other grids (so the tests above exercise registration, not reorientation)."""
    base = _blob_sitk()
    for seq, grid in GRIDS.items():
        out = perturb(base, grid)
        assert same_physical_grid(out, base) == (seq == "t1ce" and base.GetSize() == out.GetSize())
    assert set(MOTIONS) == {"flair", "t1", "t2"}
