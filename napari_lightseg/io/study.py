"""A loaded study: four co-registered sequences (and labels) in display orientation."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .labels import LabelError, to_internal
from .naming import SEQUENCES, StudyError, StudyFiles, discover
from .nifti import Geometry, load_nifti


@dataclass
class Study:
    """Images are float32 arrays in display orientation (see ``nifti.DISPLAY_AXCODES``)."""

    name: str
    images: dict[str, np.ndarray]
    geometry: Geometry
    labels: np.ndarray | None = None  # internal classes 0..3, display orientation
    convention: str | None = None  # label convention of the loaded segmentation
    files: StudyFiles | None = None
    sources: dict[str, str] = field(default_factory=dict)  # sequence -> file path

    @property
    def missing(self) -> list[str]:
        return [s for s in SEQUENCES if s not in self.images]

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.geometry.display_shape

    def stack(self, sequences: tuple[str, ...] | list[str] = SEQUENCES) -> np.ndarray:
        """Channels-first array of the requested sequences; a missing one is a clear error."""
        absent = [s for s in sequences if s not in self.images]
        if absent:
            raise StudyError(f"{self.name}: sequence(s) {', '.join(absent)} missing from the study")
        return np.stack([self.images[s] for s in sequences])


def load_labels(path: str | Path, geometry: Geometry | None = None) -> tuple[np.ndarray, str | None, Geometry]:
    """Load a segmentation file as internal classes in display orientation."""
    data, img = load_nifti(path)
    own = Geometry.from_image(img)
    if geometry is not None and not own.same_grid(geometry):
        raise StudyError(f"{path}: segmentation grid does not match the images ({own.describe_difference(geometry)})")
    try:
        classes, convention = to_internal(data, source=str(path))
    except LabelError as exc:
        raise StudyError(str(exc)) from None
    return own.to_display(classes), convention, own


def load_study(paths: str | Path | list[str | Path] | StudyFiles, with_labels: bool = True) -> Study:
    """Discover and load a study; check that all sequences share one grid."""
    files = paths if isinstance(paths, StudyFiles) else discover(paths)
    images: dict[str, np.ndarray] = {}
    sources: dict[str, str] = {}
    geometry: Geometry | None = None
    reference: Path | None = None
    if files.multichannel is not None:
        data, img = load_nifti(files.multichannel, allow_4d=True)
        if data.ndim != 4 or data.shape[3] != len(SEQUENCES):
            raise StudyError(
                f"{files.multichannel}: a single file must be 4D with {len(SEQUENCES)} volumes "
                f"(FLAIR, T1, T1ce, T2), got shape {data.shape}"
            )
        geometry = Geometry.from_image(img)
        for i, seq in enumerate(SEQUENCES):
            images[seq] = geometry.to_display(data[..., i])
            sources[seq] = f"{files.multichannel}[{i}]"
    else:
        # gzip inflation releases the GIL: read the sequences in parallel
        with ThreadPoolExecutor(max_workers=len(files.sequences)) as pool:
            loaded = dict(zip(files.sequences, pool.map(load_nifti, files.sequences.values())))
        for seq, path in files.sequences.items():  # FLAIR first: results are written in its grid
            data, img = loaded[seq]
            own = Geometry.from_image(img)
            if geometry is None:
                geometry, reference = own, path
            elif not own.same_grid(geometry):
                raise StudyError(
                    f"{path}: grid differs from {reference.name} ({own.describe_difference(geometry)})"
                )
            images[seq] = geometry.to_display(data)
            sources[seq] = str(path)
    study = Study(files.name, images, geometry, files=files, sources=sources)
    if with_labels and files.segmentation is not None:
        study.labels, study.convention, _ = load_labels(files.segmentation, geometry)
    return study
