"""npe2 reader: a case folder, a set of sequence files, a single NIfTI, or a 4D study file.

``get_reader`` never raises: it returns None for paths it cannot read. Problems found while
reading (a truncated file, mismatched grids) raise ``StudyError``: one line naming the file,
which napari shows as a notification.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .io import discover, is_nifti, load_labels, load_study, role_of
from .io.naming import SEGMENTATION, case_name, strip_nifti_suffix
from .io.nifti import Geometry, load_nifti
from .layers import METADATA_KEY, LayerData, labels_layer, spatial_kwargs, study_layers


def get_reader(path: str | list[str]):
    paths = [Path(p) for p in (path if isinstance(path, list) else [path])]
    try:
        if len(paths) == 1 and paths[0].is_dir():
            return read_study if any(is_nifti(f) for f in paths[0].iterdir()) else None
        if paths and all(is_nifti(p) and p.is_file() for p in paths):
            return read_study
    except OSError:
        return None
    return None


def read_study(path: str | list[str]) -> list[LayerData]:
    """Layers for a study. A lone segmentation opens as labels; a lone unnamed 3D file as an image."""
    paths = [Path(p) for p in (path if isinstance(path, list) else [path])]
    single = paths[0] if len(paths) == 1 and paths[0].is_file() else None
    if single is not None and role_of(single) == SEGMENTATION:
        labels, convention, geometry = load_labels(single)
        name = case_name(single)
        return [labels_layer(labels, geometry, f"{name} seg", study=name, convention=convention, extra={"source": str(single)})]
    if single is not None and role_of(single) is None:
        data, img = load_nifti(single, allow_4d=True)
        if data.ndim == 3:
            return [_plain_image(single, data, Geometry.from_image(img))]
    return study_layers(load_study(discover(paths if len(paths) > 1 else paths[0])))


def _plain_image(path: Path, data: np.ndarray, geometry: Geometry) -> LayerData:
    meta = {"study": case_name(path), "role": "image", "sequence": None, "geometry": geometry, "source": str(path)}
    kwargs = dict(name=strip_nifti_suffix(path.name), colormap="gray", metadata={METADATA_KEY: meta}, **spatial_kwargs(geometry))
    return (geometry.to_display(data), kwargs, "image")
