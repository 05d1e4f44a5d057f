"""Study I/O: naming conventions, NIfTI load/save with orientation, label conventions, masks, DICOM series and SEG."""
from . import _lean_nibabel  # noqa: F401  (first: nibabel without pydicom, see the module)
from .dicom import (
    SeriesInfo,
    contains_dicom,
    find_dicom_series,
    identify_sequences,
    load_dicom_series_volumes,
    parse_sequence_overrides,
    read_series,
)
from .dicom_seg import read_dicom_seg, referenced_series_uid, write_dicom_seg
from .labels import (
    CLASS_COLORS,
    CLASS_NAMES,
    CLASSES,
    CONVENTIONS,
    DEFAULT_CONVENTION,
    REGIONS,
    LabelError,
    from_internal,
    region_mask,
    to_internal,
)
from .masks import Segmentation, save_labels, save_segmentation
from .naming import SEQUENCE_TITLES, SEQUENCES, StudyError, StudyFiles, discover, is_nifti, role_of
from .nifti import DISPLAY_AXCODES, Geometry, load_nifti, save_nifti_like
from .study import Study, load_labels, load_study

__all__ = [
    "CLASS_COLORS", "CLASS_NAMES", "CLASSES", "CONVENTIONS", "DEFAULT_CONVENTION", "REGIONS", "LabelError",
    "from_internal", "region_mask", "to_internal", "SEQUENCE_TITLES", "SEQUENCES", "StudyError", "StudyFiles",
    "discover", "is_nifti", "role_of", "DISPLAY_AXCODES", "Geometry", "load_nifti", "save_nifti_like",
    "Study", "load_labels", "load_study", "save_labels", "Segmentation", "save_segmentation",
    "SeriesInfo", "contains_dicom", "find_dicom_series", "identify_sequences", "load_dicom_series_volumes", "parse_sequence_overrides",
    "read_series", "read_dicom_seg", "referenced_series_uid", "write_dicom_seg",
]
