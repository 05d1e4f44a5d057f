"""A loaded study: four co-registered sequences (and labels) in display orientation."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .grids import describe_grid_difference, same_physical_grid
from .labels import LabelError, to_internal
from .naming import SEQUENCES, StudyError, StudyFiles, discover
from .nifti import Geometry, load_nifti

if TYPE_CHECKING:
    import SimpleITK as sitk

    from .series import SeriesVolume


@dataclass
class AlignedSeries:
    """How one sequence was brought onto the study's (reference) grid (see ``preprocess.registration``)."""

    volume: SeriesVolume  # the sequence in its own grid, as read
    transform: sitk.Transform  # reference physical point -> this sequence's physical point (LPS mm)
    geometry: Geometry  # its own grid: the NIfTI file's exact geometry, or one made from the SimpleITK image
    registered: bool = False  # rigidly registered (else the scanner's coordinates were trusted)
    reoriented: bool = False  # same physical grid as the reference in another voxel order: exact, no interpolation
    metric: float | None = None  # final Mattes mutual information (lower is better) when registered
    info: dict[str, Any] = field(default_factory=dict)  # iterations, stop condition, seconds


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
    alignment: dict[str, AlignedSeries] = field(default_factory=dict)  # filled when sequences were aligned
    reference: str | None = None  # the sequence whose grid is the study's grid (None: the first one)
    timings_s: dict[str, float] = field(default_factory=dict)  # read / register / resample / extract seconds
    notes: list[str] = field(default_factory=list)  # what was done to the input (registration, brain extraction)

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


def read_label_file(path: str | Path) -> tuple[np.ndarray, str | None, Geometry]:
    """A segmentation file as internal classes in its own voxel order, its label convention and its grid."""
    data, img = load_nifti(path)
    try:
        classes, convention = to_internal(data, source=str(path))
    except LabelError as exc:
        raise StudyError(str(exc)) from None
    return classes, convention, Geometry.from_image(img)


def load_labels(path: str | Path, geometry: Geometry | None = None) -> tuple[np.ndarray, str | None, Geometry]:
    """Load a segmentation file as internal classes in display orientation.

    A file on the same physical grid in another voxel order is reoriented exactly."""
    classes, convention, own = read_label_file(path)
    if geometry is not None and not own.same_grid(geometry) and not same_physical_grid(own, geometry):
        raise StudyError(f"{path}: segmentation grid does not match the images ({describe_grid_difference(geometry, own)})")
    return own.to_display(classes), convention, own


def read_sequences(files: StudyFiles) -> tuple[dict[str, np.ndarray], dict[str, Geometry]]:
    """Each sequence file's voxels (its own order) and grid; read in parallel: gzip inflation releases the GIL."""
    with ThreadPoolExecutor(max_workers=len(files.sequences)) as pool:
        loaded = dict(zip(files.sequences, pool.map(load_nifti, files.sequences.values())))
    return {seq: data for seq, (data, _) in loaded.items()}, {seq: Geometry.from_image(img) for seq, (_, img) in loaded.items()}


def grid_sequence(files: StudyFiles, reference: str | None) -> str:
    """The sequence whose grid is a one-grid study's: ``reference`` if present, else the first (FLAIR: results
    are written in its grid)."""
    return reference if reference is not None and reference in files.sequences else next(iter(files.sequences))


def off_grid(grids: dict[str, Geometry], chosen: str) -> list[str]:
    """Sequences not on ``chosen``'s physical grid (the same grid in another voxel order is on it)."""
    other = [seq for seq, grid in grids.items() if not grid.same_grid(grids[chosen])]
    # the rare case: only now pay for the world-space comparison
    return [seq for seq in other if not same_physical_grid(grids[seq], grids[chosen])]


def one_grid_study(files: StudyFiles, data: dict[str, np.ndarray], grids: dict[str, Geometry], chosen: str, *,
                   named: bool = False) -> Study:
    """The study of sequences on ``chosen``'s physical grid, each reoriented exactly to display order.

    ``named``: the caller chose ``chosen`` (it becomes ``Study.reference``)."""
    images = {seq: grids[seq].to_display(data[seq]) for seq in files.sequences}
    sources = {seq: str(path) for seq, path in files.sequences.items()}
    return Study(files.name, images, grids[chosen], files=files, sources=sources, reference=chosen if named else None)


def load_study(paths: str | Path | list[str | Path] | StudyFiles, with_labels: bool = True, *,
               reference: str | None = None) -> Study:
    """Discover and load a study on one grid.

    Sequences on the same physical grid in another voxel order are reoriented exactly. Sequences on
    other grids are refused (with the difference in mm and degrees): ``clinical.load_nifti_study``
    registers them instead. The study's grid is the first sequence's (FLAIR's) unless ``reference``
    names another.
    """
    started = time.perf_counter()
    files = paths if isinstance(paths, StudyFiles) else discover(paths)
    if files.multichannel is not None:
        study = _multichannel_study(files)
    else:
        data, grids = read_sequences(files)
        chosen = grid_sequence(files, reference)
        other = off_grid(grids, chosen)
        if other:
            seq = other[0]
            raise StudyError(f"{files.sequences[seq]}: grid differs from {files.sequences[chosen].name} "
                             f"({describe_grid_difference(grids[chosen], grids[seq])}); this path reads one-grid "
                             "studies only (lightseg segment and the Segment dock register other grids)")
        study = one_grid_study(files, data, grids, chosen, named=bool(reference))
    if with_labels and files.segmentation is not None:
        study.labels, study.convention, _ = load_labels(files.segmentation, study.geometry)
    study.timings_s["read"] = time.perf_counter() - started
    return study


def _multichannel_study(files: StudyFiles) -> Study:
    """One 4D file holding the four sequences (one grid by construction)."""
    assert files.multichannel is not None
    data, img = load_nifti(files.multichannel, allow_4d=True)
    if data.ndim != 4 or data.shape[3] != len(SEQUENCES):
        raise StudyError(
            f"{files.multichannel}: a single file must be 4D with {len(SEQUENCES)} volumes "
            f"(FLAIR, T1, T1ce, T2), got shape {data.shape}"
        )
    geometry = Geometry.from_image(img)
    images = {seq: geometry.to_display(data[..., i]) for i, seq in enumerate(SEQUENCES)}
    sources = {seq: f"{files.multichannel}[{i}]" for i, seq in enumerate(SEQUENCES)}
    return Study(files.name, images, geometry, files=files, sources=sources)


def study_convention(study: Study) -> str | None:
    """The label convention of the study's own segmentation file, if it has one (to save in the same)."""
    if study.convention is not None:
        return study.convention
    segmentation = study.files.segmentation if study.files is not None else None
    if segmentation is None:
        return None
    from .labels import detect_convention, distinct_values

    try:
        data, _ = load_nifti(segmentation, keep_integers=True)  # the values only: no float32 copy
        return detect_convention(distinct_values(data), str(segmentation))
    except (StudyError, LabelError):
        return None  # an unreadable ground truth must not stop a run; the default convention applies
