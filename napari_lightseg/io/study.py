"""A loaded study: four co-registered sequences (and labels) in display orientation."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .labels import LabelError, to_internal
from .naming import SEQUENCES, StudyError, StudyFiles, discover
from .nifti import Geometry, load_nifti

if TYPE_CHECKING:
    import SimpleITK as sitk

    from ..progress import CancelCallback, ProgressCallback
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


def load_labels(path: str | Path, geometry: Geometry | None = None) -> tuple[np.ndarray, str | None, Geometry]:
    """Load a segmentation file as internal classes in display orientation.

    A file on the same physical grid in another voxel order is reoriented exactly."""
    data, img = load_nifti(path)
    own = Geometry.from_image(img)
    if geometry is not None and not own.same_grid(geometry):
        from ..preprocess.registration import describe_grid_difference, same_physical_grid

        if not same_physical_grid(own, geometry):
            raise StudyError(f"{path}: segmentation grid does not match the images ({describe_grid_difference(geometry, own)})")
    try:
        classes, convention = to_internal(data, source=str(path))
    except LabelError as exc:
        raise StudyError(str(exc)) from None
    return own.to_display(classes), convention, own


def load_study(paths: str | Path | list[str | Path] | StudyFiles, with_labels: bool = True, *, align: bool = False,
               reference: str | None = None, register: bool | None = None, progress: ProgressCallback | None = None,
               cancel: CancelCallback | None = None) -> Study:
    """Discover and load a study on one grid.

    Sequences on the same physical grid in another voxel order are reoriented exactly. Sequences on
    other grids are refused (with the difference in mm and degrees) unless ``align``: then they are
    registered to the ``reference`` sequence (default T1ce) and resampled onto its grid
    (``preprocess.registration.align_study``). Without registration the study's grid is the first
    sequence's (FLAIR's) unless ``reference`` names another.
    """
    started = time.perf_counter()
    files = paths if isinstance(paths, StudyFiles) else discover(paths)
    images: dict[str, np.ndarray] = {}
    sources: dict[str, str] = {}
    geometry: Geometry | None = None
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
        study = Study(files.name, images, geometry, files=files, sources=sources)
    else:
        # gzip inflation releases the GIL: read the sequences in parallel
        with ThreadPoolExecutor(max_workers=len(files.sequences)) as pool:
            loaded = dict(zip(files.sequences, pool.map(load_nifti, files.sequences.values())))
        grids = {seq: Geometry.from_image(img) for seq, (_, img) in loaded.items()}
        first = next(iter(files.sequences))  # FLAIR first: results are written in its grid
        chosen = reference if reference in files.sequences else first
        geometry = grids[chosen]
        other = [seq for seq in files.sequences if not grids[seq].same_grid(geometry)]
        if other:  # the rare case: only now pay for the world-space comparison
            from ..preprocess.registration import describe_grid_difference, same_physical_grid

            other = [seq for seq in other if not same_physical_grid(grids[seq], geometry)]
            if other and not align:
                seq = other[0]
                raise StudyError(f"{files.sequences[seq]}: grid differs from {files.sequences[chosen].name} "
                                 f"({describe_grid_difference(geometry, grids[seq])}); registration is off")
        if other:
            study = _aligned_study(files, loaded, grids, reference or "t1ce", register, progress, cancel)
        else:
            for seq, path in files.sequences.items():
                images[seq] = grids[seq].to_display(loaded[seq][0])  # exact reorientation when the order differs
                sources[seq] = str(path)
            study = Study(files.name, images, geometry, files=files, sources=sources,
                          reference=chosen if reference else None)
    if with_labels and files.segmentation is not None:
        study.labels, study.convention, _ = _load_study_labels(files.segmentation, study)
    study.timings_s["read"] = time.perf_counter() - started - sum(study.timings_s.values())
    return study


def _aligned_study(files: StudyFiles, loaded: dict[str, tuple[np.ndarray, Any]], grids: dict[str, Geometry],
                   reference: str, register: bool | None, progress: ProgressCallback | None,
                   cancel: CancelCallback | None) -> Study:
    """NIfTI sequences on different grids through the same path as DICOM series: ``align_study``."""
    from ..preprocess.registration import align_study, sitk_from_array
    from .series import SeriesVolume

    volumes = {}
    for seq, path in files.sequences.items():
        image = sitk_from_array(loaded[seq][0], grids[seq])
        volumes[seq] = SeriesVolume(image, str(path), description=Path(path).name, sequence=seq)
    study = align_study(volumes, reference, register=register, geometries=grids, name=files.name,
                        progress=progress, cancel=cancel)
    study.files = files
    return study


def _load_study_labels(path: Path, study: Study) -> tuple[np.ndarray, str | None, Geometry]:
    """Ground truth on the study's grid; on an aligned study it may lie on any sequence's grid (nearest neighbour)."""
    if not study.alignment:
        return load_labels(path, study.geometry)
    from ..preprocess.registration import labels_onto_study, same_physical_grid

    data, img = load_nifti(path)
    own = Geometry.from_image(img)
    try:
        classes, convention = to_internal(data, source=str(path))
    except LabelError as exc:
        raise StudyError(str(exc)) from None
    if same_physical_grid(own, study.geometry):
        return own.to_display(classes), convention, own
    return labels_onto_study(classes, own, study), convention, own


def study_convention(study: Study) -> str | None:
    """The label convention of the study's own segmentation file, if it has one (to save in the same)."""
    if study.convention is not None:
        return study.convention
    segmentation = study.files.segmentation if study.files is not None else None
    if segmentation is None:
        return None
    from .labels import detect_convention, distinct_values

    try:
        data, _ = load_nifti(segmentation)
        return detect_convention(distinct_values(data), str(segmentation))
    except (StudyError, LabelError):
        return None  # an unreadable ground truth must not stop a run; the default convention applies
