"""npe2 reader: a case folder, a set of sequence files, a single NIfTI, a 4D study file, or a DICOM study folder.

``get_reader`` never raises: it returns None for paths it cannot read. Problems found while
reading (a truncated file, mismatched grids) raise ``StudyError``: one line naming the file,
which napari shows as a notification.

A single file opens as a tumour mask (Labels with the class table) whatever its name when, in this
order: its label sidecar (``<stem>.json``, see ``io.labels``) says so, its header's intent code is
NIFTI_INTENT_LABEL, its name says "seg", or its values form a label set (a few integers within
0..4). Anything else opens as a grey image.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from .clinical import DEFAULT_REFERENCE, dicom_folder, load_nifti_study
from .clinical_view import nifti_series_table
from .io import CONVENTIONS, StudyError, discover, is_nifti, role_of, to_internal
from .io.labels import LabelError, read_label_sidecar
from .io.naming import SEGMENTATION, case_name, strip_nifti_suffix
from .io.nifti import Geometry, load_nifti
from .io.opened import remember
from .layers import LayerData, clinical_study_layers, labels_layer, spatial_kwargs, study_layers
from .types import LayerMeta

PLUGIN_NAME = "napari-lightseg"
NIFTI_INTENT_LABEL = 1002
MAX_LABEL_VALUES = 16  # more distinct values than this is an image, whatever the dtype
LABEL_VALUES = frozenset(range(5))  # 0..4: BraTS 2021 (1/2/4) and 2023 (1/2/3)
READER_PATTERNS = ("*.nii", "*.nii.gz")

Reader = Callable[[Any], list[LayerData]]


def get_reader(path: str | list[str]) -> Reader | None:
    paths = [Path(p) for p in (path if isinstance(path, list) else [path])]
    try:
        if len(paths) == 1 and paths[0].is_dir():
            return _folder_reader(paths[0])
        if paths and all(is_nifti(p) and p.is_file() for p in paths):
            return read_study
    except OSError:
        return None
    return None


def _folder_reader(folder: Path) -> Reader | None:
    """A folder with NIfTI files is a case folder; one with DICOM files (any depth, no NIfTI) a DICOM
    study. Cheap: at most a few hundred 132-byte file preambles are read to tell (``dicom_folder``)."""
    if any(is_nifti(f) for f in folder.iterdir()):
        return read_study
    return read_dicom_study if dicom_folder([folder]) is not None else None


def read_dicom_study(path: str | list[str]) -> list[LayerData]:
    """A DICOM study folder, fast (about a second): headers, the four identified series, resampled onto
    the reference (T1ce) grid through the scanner's coordinates only. No registration or brain
    extraction here: the segment widget's Run does both in its worker (``clinical.open_study``).

    Ambiguous or missing sequences raise StudyError (one line listing the series): napari shows it.
    """
    from .io.dicom import find_dicom_series, identify_sequences, read_series
    from .preprocess.registration import align_study

    folder = Path(path[0] if isinstance(path, list) else path)
    started = time.perf_counter()
    series = find_dicom_series(folder)
    chosen = identify_sequences(series)
    with ThreadPoolExecutor(max_workers=len(chosen)) as pool:  # GDCM decoding releases the GIL
        volumes = dict(zip(chosen, pool.map(read_series, chosen.values())))
    read_s = time.perf_counter() - started
    study = align_study(volumes, DEFAULT_REFERENCE, register=False, name=folder.name)
    study.timings_s["read"] = read_s
    return clinical_study_layers(study, [str(folder)], [info.as_row() for info in series], dicom_folder=str(folder))


def read_study(path: str | list[str]) -> list[LayerData]:
    """Layers for a study. A lone mask opens as labels; a lone other 3D file as an image."""
    paths = [Path(p) for p in (path if isinstance(path, list) else [path])]
    if len(paths) == 1 and paths[0].is_dir() and dicom_folder(paths) is not None:  # `lightseg view DICOM_FOLDER`
        return read_dicom_study(str(paths[0]))
    single = paths[0] if len(paths) == 1 and paths[0].is_file() else None
    if single is not None:
        data, img = load_nifti(single, allow_4d=True)
        if data.ndim == 3:
            sidecar = read_label_sidecar(single)
            if sidecar is not None or is_label_volume(single, data, img):
                return [read_mask(single, data, img, sidecar["convention"] if sidecar else None)]
            if role_of(single) in (SEGMENTATION, None):
                return [_plain_image(single, data, Geometry.from_image(img))]
    files = discover(list(paths) if len(paths) > 1 else paths[0])
    study = load_nifti_study(files, register=False)  # sequences on other grids: the scanner's coordinates
    if study.alignment:  # NIfTI on different grids: the segment widget's Run registers them (clinical path)
        inputs = [str(p) for p in files.sequences.values()]
        return clinical_study_layers(study, inputs, nifti_series_table(study))
    return study_layers(study)


def is_label_volume(path: Path, data: np.ndarray, img: nib.Nifti1Image) -> bool:
    """True for a mask: intent code LABEL, a segmentation's name, or a small set of integers in 0..4."""
    if int(img.header.get("intent_code", 0)) == NIFTI_INTENT_LABEL or role_of(path) == SEGMENTATION:
        return True
    return label_value_set(data) is not None


def label_value_set(data: np.ndarray) -> set[int] | None:
    """The distinct values if they look like labels (few integers within 0..4), else None.

    A coarse sample rejects ordinary images before the full (slower) pass.
    """
    for sample in (data[::4, ::4, ::4], data):
        values = np.unique(sample)
        if values.size > MAX_LABEL_VALUES or np.any(values != np.round(values)):
            return None
        found = {int(v) for v in values}
        if not found <= LABEL_VALUES:
            return None
    return found


def read_mask(path: Path, data: np.ndarray, img: nib.Nifti1Image, convention: str | None = None) -> LayerData:
    """A mask file as a Labels layer of internal classes; the sidecar's convention, if given, decides."""
    geometry = Geometry.from_image(img)
    try:
        if convention is not None:
            mapping = CONVENTIONS[convention]
            unknown = {int(v) for v in np.unique(data)} - set(mapping)
            if unknown:
                raise LabelError(f"{path}: values {sorted(unknown)} are not in its sidecar's {convention} labels")
            lut = np.zeros(max(mapping) + 1, dtype=np.uint8)
            for value, internal in mapping.items():
                lut[value] = internal
            classes = lut[data.astype(np.intp)]
        else:
            classes, convention = to_internal(data, source=str(path))
    except LabelError as exc:
        raise StudyError(str(exc)) from None
    name = f"{case_name(path)} seg" if role_of(path) == SEGMENTATION else strip_nifti_suffix(path.name)
    return labels_layer(geometry.to_display(classes), geometry, name, study=case_name(path), convention=convention,
                        extra={"source": str(path)})


def _plain_image(path: Path, data: np.ndarray, geometry: Geometry) -> LayerData:
    remember(geometry, [path])
    meta = LayerMeta(case_name(path), "image", geometry=geometry, source=str(path))
    kwargs = dict(name=strip_nifti_suffix(path.name), colormap="gray", metadata=meta.layer_metadata(), **spatial_kwargs(geometry))
    return (geometry.to_display(data), kwargs, "image")


# ---------------------------------------------------------------- napari's reader preference
def prefer_lightseg_reader(settings=None) -> list[str]:
    """Make napari open NIfTI files with this plugin without its "Choose reader" dialog.

    napari's builtin reader also claims ``*.nii``/``*.nii.gz`` (and every folder), so with two
    candidates napari asks, unless ``settings.plugins.extension2reader`` names one. This sets that
    preference for the NIfTI patterns the user has not assigned already (never overrides a choice).
    Returns the patterns it set.
    """
    if settings is None:
        from napari.settings import get_settings

        settings = get_settings()
    current = dict(settings.plugins.extension2reader)
    added = [pattern for pattern in READER_PATTERNS if pattern not in current]
    if added:
        settings.plugins.extension2reader = {**current, **dict.fromkeys(added, PLUGIN_NAME)}
    return added


def prefer_for_case_folders(parent: str | Path, settings=None) -> str | None:
    """Folders cannot be told apart by name, so napari's preference is set per parent folder:
    every case folder inside ``parent`` then opens with this plugin. Returns the pattern set, or None."""
    if settings is None:
        from napari.settings import get_settings

        settings = get_settings()
    pattern = os.path.join(os.path.realpath(parent), "*") + os.sep
    current = dict(settings.plugins.extension2reader)
    if pattern in current:
        return None
    settings.plugins.extension2reader = {**current, pattern: PLUGIN_NAME}
    return pattern
