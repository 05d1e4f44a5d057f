"""DICOM-SEG output (and input) for tumour classes on a source DICOM series' grid.

A DICOM Segmentation object lets a PACS, 3D Slicer or OHIF show our result over the series it
was computed on: it references that series' instances, carries one named, coded segment per
class and says which algorithm made it. highdicom builds (and validates) the object.

Segment codes (``SEGMENT_CODES``) come from DICOM CID 7168/7169 "Brain Lesion Segmentation Type",
under category SCT 49755003 "Morphologically Abnormal Structure" (CID 7150):

=====  =======  ==============================================
class  segment  segmented property type
=====  =======  ==============================================
1 NCR  1        SCT 6574001 "Necrosis" (CID 7168; also used for non-enhancing core)
2 ED   2        SCT 79654002 "Edema"
3 ET   3        NCIt C113842 "Enhancing Lesion"
=====  =======  ==============================================

Segment numbers equal the internal class values, so no BraTS file convention applies.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .labels import CLASSES, NUM_CLASSES
from .naming import StudyError
from .outputs import write_atomically
from .series import SeriesVolume

# category and property type per internal class: (value, scheme designator, meaning)
SEGMENT_CATEGORY: tuple[str, str, str] = ("49755003", "SCT", "Morphologically Abnormal Structure")
SEGMENT_CODES: dict[int, tuple[str, str, str]] = {
    1: ("6574001", "SCT", "Necrosis"),
    2: ("79654002", "SCT", "Edema"),
    3: ("C113842", "NCIt", "Enhancing Lesion"),
}
DEFAULT_SERIES_OFFSET = 1000  # SEG series number = source series number + this


def package_version() -> str:
    """Our version, for the SEG's algorithm identification and software versions."""
    from .. import __version__

    return __version__


def _source_datasets(series: SeriesVolume) -> list[Any]:
    import pydicom

    if not series.files:
        raise StudyError(f"{series.source}: series has no DICOM files; a DICOM-SEG needs a DICOM source series")
    return [pydicom.dcmread(f, stop_before_pixels=True) for f in series.files]


def _frame_slices(series: SeriesVolume, sources: list[Any]) -> np.ndarray | None:
    """For an enhanced multi-frame source, the volume slice (z) each frame shows; None for one file per slice."""
    if len(sources) != 1 or int(sources[0].get("NumberOfFrames") or 1) <= 1:
        return None
    from .dicom import frame_planes

    positions = [position for position, _ in frame_planes(sources[0])]
    if any(position is None for position in positions):
        raise StudyError(f"{series.files[0]}: a frame has no ImagePositionPatient")
    slices = np.array([round(series.image.TransformPhysicalPointToContinuousIndex(position)[2]) for position in positions])
    if sorted(slices.tolist()) != list(range(series.image.GetSize()[2])):
        raise StudyError(f"{series.files[0]}: frames do not map one-to-one onto the volume's slices")
    return slices


def _segment_descriptions(model_name: str) -> list[Any]:
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    algorithm = hd.AlgorithmIdentificationSequence(
        name=model_name, family=codes.cid7162.ArtificialIntelligence, version=package_version(), source="napari-lightseg",
    )
    category = Code(*SEGMENT_CATEGORY)
    descriptions = []
    for tumour_class in CLASSES:
        color = hd.color.CIELabColor.from_string(tumour_class.color[:7]) if tumour_class.color.startswith("#") else None
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=tumour_class.value,
            segment_label=tumour_class.name,
            segmented_property_category=category,
            segmented_property_type=Code(*SEGMENT_CODES[tumour_class.value]),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            display_color=color,
        ))
    return descriptions


def write_dicom_seg(
    path: str | Path,
    labels: np.ndarray,
    series: SeriesVolume,
    *,
    model_name: str,
    convention_free: bool = True,
    overwrite: bool = False,
    series_number: int | None = None,
) -> Path:
    """Write internal classes (0 bg, 1 NCR, 2 ED, 3 ET) on ``series``' grid as a BINARY DICOM-SEG.

    ``labels`` is (z, y, x), SimpleITK array order, slices in ``series.files`` order. Every class
    gets a segment, present or not. Atomic (temporary file, then rename); refuses an existing file
    unless ``overwrite``. ``convention_free`` documents that SEG segments carry names and codes, not
    BraTS values; there is no other mode.
    """
    import highdicom as hd
    from pydicom.uid import generate_uid

    if not convention_free:
        raise ValueError("DICOM-SEG segments are named and coded; a BraTS value convention does not apply")
    path = Path(path)
    if path.exists() and not overwrite:
        raise StudyError(f"{path}: file exists; refusing to overwrite")
    if not path.parent.is_dir():
        raise StudyError(f"{path}: folder {path.parent} does not exist")
    data = np.asarray(labels)
    sources = _source_datasets(series)
    frame_slices = _frame_slices(series, sources)
    n_slices = len(sources) if frame_slices is None else len(frame_slices)
    expected = (n_slices, int(sources[0].Rows), int(sources[0].Columns))
    if tuple(data.shape) != expected:
        raise StudyError(f"{path}: labels shape {data.shape} does not match the source series {series.describe()} "
                         f"(slices, rows, columns = {expected})")
    if data.size and (data.min() < 0 or data.max() >= NUM_CLASSES):
        raise StudyError(f"{path}: labels must be internal classes 0..{NUM_CLASSES - 1}, got {data.min()}..{data.max()}")
    version = package_version()
    number = series_number if series_number is not None else DEFAULT_SERIES_OFFSET + (series.series_number or 0)
    frames = data.astype(np.uint8) if frame_slices is None else data.astype(np.uint8)[frame_slices]  # source frame order
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=_segment_descriptions(model_name),
        series_instance_uid=generate_uid(),
        series_number=number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="napari-lightseg",
        manufacturer_model_name=model_name,
        software_versions=version,
        device_serial_number="0",
        series_description=f"Tumour segmentation ({model_name})"[:64],
        content_label="TUMOUR",
        content_description=f"NCR/ED/ET by {model_name}, napari-lightseg {version}"[:64],
        omit_empty_frames=bool(np.any(data)),  # an all-empty result still needs its frames
    )
    return write_atomically(path, lambda temp: seg.save_as(str(temp)), overwrite=overwrite, kind="DICOM-SEG")


def _class_of_segment(description: Any) -> int | None:
    """Internal class of a SEG segment: by property type code, else by label (NCR/ED/ET)."""
    code = description.segmented_property_type
    for value, (code_value, scheme, _) in SEGMENT_CODES.items():
        if code.value == code_value and code.scheme_designator == scheme:
            return value
    by_name = {c.name.upper(): c.value for c in CLASSES}
    return by_name.get(str(description.segment_label).strip().upper())


def referenced_series_uid(path: str | Path) -> str:
    """The SeriesInstanceUID a DICOM-SEG was drawn on: to find its source among ``find_dicom_series``."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality", "ReferencedSeriesSequence"])
        if str(ds.get("Modality", "")) != "SEG":
            raise ValueError(f"modality is {ds.get('Modality', 'missing')}, not SEG")
        return str(ds.ReferencedSeriesSequence[0].SeriesInstanceUID)
    except Exception as exc:  # any failure means: not a SEG we can place
        raise StudyError(f"{path}: not a DICOM-SEG that references a series ({str(exc).splitlines()[0][:120]})") from None


def read_dicom_seg(path: str | Path, series: SeriesVolume) -> np.ndarray:
    """Internal classes (z, y, x, uint8) on ``series``' grid from a DICOM-SEG that references it."""
    import highdicom as hd

    path = Path(path)
    try:
        seg = hd.seg.segread(path)
    except Exception as exc:  # pydicom/highdicom raise many types for a file that is not a SEG
        raise StudyError(f"{path}: not a readable DICOM-SEG ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None
    referenced = {uid for _, uid, _ in seg.get_source_image_uids()}
    if series.series_uid and series.series_uid not in referenced:
        raise StudyError(f"{path}: segmentation does not reference series {series.describe()}")
    sources = _source_datasets(series)
    frame_slices = _frame_slices(series, sources)
    segment_classes: dict[int, int] = {}
    for number in seg.get_segment_numbers():
        value = _class_of_segment(seg.get_segment_description(number))
        if value is None:
            label = seg.get_segment_description(number).segment_label
            raise StudyError(f"{path}: segment {number} ({label!r}) is not one of NCR, ED, ET")
        segment_classes[number] = value
    if frame_slices is None:
        combined = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=[str(ds.SOPInstanceUID) for ds in sources], combine_segments=True,
            assert_missing_frames_are_empty=True,
        )  # (z, y, x) segment numbers, 0 outside every segment
    else:
        by_frame = seg.get_pixels_by_source_frame(
            source_sop_instance_uid=str(sources[0].SOPInstanceUID), source_frame_numbers=list(range(1, len(frame_slices) + 1)),
            combine_segments=True, assert_missing_frames_are_empty=True,
        )
        combined = np.zeros_like(by_frame)
        combined[frame_slices] = by_frame
    lut = np.zeros(max(segment_classes, default=0) + 1, dtype=np.uint8)
    for number, value in segment_classes.items():
        lut[number] = value
    return lut[np.asarray(combined).astype(np.intp)]
