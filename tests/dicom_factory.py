"""Write valid MR DICOM series from SimpleITK images, so DICOM tests need no DICOM files in git.

``write_dicom_series`` writes one MR Image Storage file per slice with full geometry (oblique
directions included); ``write_study_from_case`` turns a real NIfTI case into a four-series study
nested like a PACS export (``PATIENT/STUDY/SERIES/``).
"""
from __future__ import annotations

import datetime
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, RLELossless, generate_uid
from pydicom.valuerep import format_number_as_ds

from napari_lightseg.io.naming import SEQUENCES, discover

# Acquisition headers a scanner would write for each sequence (TR/TE/TI in ms).
SEQUENCE_HEADERS: dict[str, dict[str, Any]] = {
    "flair": {"SeriesDescription": "AX T2 FLAIR", "RepetitionTime": 9000.0, "EchoTime": 90.0, "InversionTime": 2500.0,
              "ScanningSequence": ["SE", "IR"]},
    "t1": {"SeriesDescription": "AX T1 SE", "RepetitionTime": 500.0, "EchoTime": 10.0},
    "t1ce": {"SeriesDescription": "AX T1 +C", "RepetitionTime": 500.0, "EchoTime": 10.0, "ContrastBolusAgent": "Gadobutrol"},
    "t2": {"SeriesDescription": "AX T2 TSE", "RepetitionTime": 5000.0, "EchoTime": 100.0},
}


def _stored_values(array: np.ndarray) -> tuple[np.ndarray, float, float]:
    """int16 stored values with (slope, intercept): identity for integer data that fits, else a linear map."""
    finite = np.nan_to_num(array.astype(np.float64))
    lo, hi = float(finite.min()), float(finite.max())
    if np.all(finite == np.round(finite)) and lo >= -32768 and hi <= 32767:
        return finite.astype(np.int16), 1.0, 0.0
    slope = (hi - lo) / 32767.0 if hi > lo else 1.0
    stored = np.round((finite - lo) / slope)
    return np.clip(stored, 0, 32767).astype(np.int16), slope, lo


def _ds(value: float) -> str:
    """A Decimal String (at most 16 characters) for a float."""
    return format_number_as_ds(float(value))


def write_dicom_series(
    image: sitk.Image,
    folder: str | Path,
    *,
    description: str,
    series_number: int,
    study_uid: str,
    frame_of_reference_uid: str,
    patient_id: str,
    modality: str = "MR",
    extra_tags: Mapping[str, Any] | None = None,
    compress: bool = False,
) -> list[Path]:
    """One MR Image Storage file per slice of ``image`` (any direction); returns the paths in slice order.

    File names do not follow slice order, as on real exports, so readers must sort by geometry.
    ``compress`` stores pixels RLE Lossless (an encapsulated syntax, as PACS exports often use).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    array = sitk.GetArrayFromImage(image)  # (z, y, x)
    if array.ndim != 3:
        raise ValueError(f"a 3D scalar image is needed, got array shape {array.shape}")
    stored, slope, intercept = _stored_values(array)
    direction = np.array(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    origin = np.array(image.GetOrigin(), dtype=np.float64)
    sx, sy, sz = (float(v) for v in image.GetSpacing())
    series_uid = generate_uid()
    now = datetime.datetime(2024, 5, 17, 10, 30, 0)
    extra = dict(extra_tags or {})
    paths: list[Path] = []
    for k in range(stored.shape[0]):
        sop_uid = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_of_reference_uid
        ds.Modality = modality
        ds.PatientName = f"Test^{patient_id}"
        ds.PatientID = patient_id
        ds.PatientBirthDate = "19700101"
        ds.PatientSex = "O"
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
        ds.StudyID = "1"
        ds.AccessionNumber = ""
        ds.ReferringPhysicianName = ""
        ds.Manufacturer = "lightseg-test-factory"
        ds.SeriesNumber = series_number
        ds.InstanceNumber = k + 1
        ds.SeriesDescription = description
        ds.ProtocolName = description
        ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "2D"
        ds.RepetitionTime = 500.0
        ds.EchoTime = 10.0
        ds.EchoTrainLength = 1
        ds.MagneticFieldStrength = 3.0
        ds.PatientPosition = "HFS"
        ds.BodyPartExamined = "BRAIN"
        ds.PositionReferenceIndicator = ""
        position = origin + k * sz * direction[:, 2]
        ds.ImagePositionPatient = [_ds(v) for v in position]
        ds.ImageOrientationPatient = [_ds(v) for v in (*direction[:, 0], *direction[:, 1])]
        ds.PixelSpacing = [_ds(sy), _ds(sx)]  # row spacing (between rows), column spacing
        ds.SliceThickness = _ds(sz)
        ds.SpacingBetweenSlices = _ds(sz)
        ds.SliceLocation = _ds(float(position @ direction[:, 2]))
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = int(stored.shape[1]), int(stored.shape[2])
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        if (slope, intercept) != (1.0, 0.0):  # not in the MR IOD, but scanners (Philips) write it and readers apply it
            ds.RescaleSlope = _ds(slope)
            ds.RescaleIntercept = _ds(intercept)
            ds.RescaleType = "US"
        for keyword, value in extra.items():
            setattr(ds, keyword, value)
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
        if compress:
            ds.compress(RLELossless, generate_instance_uid=False)
        # names that do not sort like the slices (real exports use UIDs or acquisition order)
        path = folder / f"IM{(k * 7919 + 13) % 100003:06d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_study_from_case(
    case_dir: str | Path, out_dir: str | Path, grids: Mapping[str, sitk.Image] | None = None,
) -> dict[str, list[Path]]:
    """Turn a NIfTI case's four sequences into four DICOM series of one study under ``out/PATIENT/STUDY/``.

    ``grids`` maps a sequence to a reference image whose grid that sequence is resampled onto
    (linear), to mimic a real study where each sequence has its own grid.
    """
    files = discover(case_dir)
    study_uid, frame_uid = generate_uid(), generate_uid()
    patient = files.name[:60] or "PATIENT"
    root = Path(out_dir) / patient / "STUDY_1"
    written: dict[str, list[Path]] = {}
    for number, sequence in enumerate(SEQUENCES, start=2):
        image = sitk.ReadImage(str(files.sequences[sequence]), sitk.sitkFloat32)
        if grids and sequence in grids:
            image = sitk.Resample(image, grids[sequence], sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        tags = dict(SEQUENCE_HEADERS[sequence])
        description = tags.pop("SeriesDescription")
        written[sequence] = write_dicom_series(
            image, root / f"SE{number:03d}", description=description, series_number=number, study_uid=study_uid,
            frame_of_reference_uid=frame_uid, patient_id=patient, extra_tags=tags,
        )
    return written
