"""The clinical path end to end: a DICOM study whose sequences have their own grids (and patient motion),
built at test time from a real case, through ``lightseg segment`` to DICOM-SEG and NIfTI on native grids."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from clinical_grids import perturbed_volumes
from dicom_factory import SEQUENCE_HEADERS, write_dicom_series
from pydicom.uid import generate_uid

from napari_lightseg import clinical
from napari_lightseg.cli import main
from napari_lightseg.io import StudyError, discover, to_internal
from napari_lightseg.io.dicom import find_dicom_series, read_series
from napari_lightseg.io.dicom_seg import read_dicom_seg
from napari_lightseg.io.labels import read_label_sidecar
from napari_lightseg.io.outputs import OutputPlan, source_file
from napari_lightseg.metrics import region_scores

CASE = "Brats18_CBICA_ALU_1"
MODEL = "unet-int8"


@pytest.fixture(scope="module")
def dicom_study(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each sequence its own series on a clinical-like grid (thick slices, tilt, other matrix) with motion."""
    files = discover(data_root / "brats18" / CASE)
    volumes, _ = perturbed_volumes(files.sequences)
    root = tmp_path_factory.mktemp("dicom") / "PATIENT"
    study_uid, frame_uid = generate_uid(), generate_uid()
    for number, (sequence, volume) in enumerate(volumes.items(), start=2):
        tags = dict(SEQUENCE_HEADERS[sequence])
        description = tags.pop("SeriesDescription")
        write_dicom_series(volume.image, root / "STUDY" / f"SE{number:03d}", description=description,
                           series_number=number, study_uid=study_uid, frame_of_reference_uid=frame_uid,
                           patient_id="PATIENT", extra_tags=tags)
    return root


def _ground_truth(data_root: Path) -> np.ndarray:
    """The case's labels as internal classes in SimpleITK (z, y, x) order: the T1ce series' grid."""
    image = sitk.ReadImage(str(data_root / "brats18" / CASE / f"{CASE}_seg.nii.gz"))
    return to_internal(sitk.GetArrayFromImage(image))[0]


@pytest.mark.slow
def test_dicom_study_to_dicom_seg_recovers_alignment(dicom_study: Path, data_root: Path, tmp_path: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in dicom_study.rglob("*") if p.is_file()}
    out, report = tmp_path / "seg.dcm", tmp_path / "report.json"
    assert main(["segment", str(dicom_study), "--model", MODEL, "--out", str(out), "--report", str(report)]) == 0
    assert {p: p.stat().st_mtime_ns for p in dicom_study.rglob("*") if p.is_file()} == before  # inputs untouched
    timings = json.loads(report.read_text())["timings_s"]
    assert {"read", "register", "resample", "inference"} <= set(timings)
    t1ce = next(read_series(s) for s in find_dicom_series(dicom_study) if s.sequence == "t1ce")
    labels = read_dicom_seg(out, t1ce)
    truth = _ground_truth(data_root)
    perturbed = region_scores(labels, truth, t1ce.spacing)["dice_WT"]
    original = tmp_path / "original.nii.gz"
    assert main(["segment", str(data_root / "brats18" / CASE), "--model", MODEL, "--out", str(original)]) == 0
    reference = to_internal(sitk.GetArrayFromImage(sitk.ReadImage(str(original))))[0]
    unperturbed = region_scores(reference, truth, t1ce.spacing)["dice_WT"]
    assert perturbed >= 0.9 * unperturbed, (perturbed, unperturbed)


@pytest.mark.slow
def test_nifti_on_a_native_series_grid_with_sidecar(dicom_study: Path, tmp_path: Path) -> None:
    out = tmp_path / "seg_flair.nii.gz"
    assert main(["segment", str(dicom_study), "--model", MODEL, "--out", str(out), "--grid", "flair"]) == 0
    flair = next(read_series(s) for s in find_dicom_series(dicom_study) if s.sequence == "flair")
    written = nib.load(out)
    assert written.shape == flair.size  # the FLAIR series' own matrix (thick slices), not the reference grid
    assert np.allclose(np.abs(written.header.get_zooms()), flair.spacing, atol=1e-4)
    sidecar = read_label_sidecar(out)
    assert sidecar is not None and sidecar["grid"] == "flair" and sidecar["model"] == MODEL
    assert set(np.unique(np.asarray(written.dataobj)).tolist()) <= {0, 1, 2, 4}


def test_dicom_seg_needs_a_dicom_input(tmp_path: Path, data_root: Path) -> None:
    code = main(["segment", str(data_root / "brats18" / CASE), "--model", MODEL, "--out", str(tmp_path / "x.dcm")])
    assert code == 2 and not (tmp_path / "x.dcm").exists()


def test_output_kind_and_sidecar_planned(tmp_path: Path) -> None:
    assert clinical.output_kind("a/seg.nii.gz") == "nifti" and clinical.output_kind("seg.DCM") == "dicom-seg"
    with pytest.raises(ValueError, match="must end in"):
        clinical.output_kind("seg.png")
    study = tmp_path / "study.nii.gz"  # a 4D input recorded per volume as study.nii.gz[i]
    study.write_bytes(b"input")
    with OutputPlan([source_file(f"{study}[2]")]) as plan:
        clinical.plan_mask_outputs(plan, tmp_path / "seg.nii.gz")
        assert tmp_path / "seg.labels.json" in plan  # the sidecar is validated up front with the mask
        with pytest.raises(StudyError, match="input"):
            clinical.plan_mask_outputs(plan, study)
