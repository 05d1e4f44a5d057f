"""The project's nouns, one typed definition each: what a study, a box, a detection, a segmentation, a run
report and a layer's plugin metadata ARE, so every module speaks of them the same way.

Why: before this module a 3D box was spelled ``tuple[tuple[int, int, int], tuple[int, int, int]]`` in six
places, two ``Detection`` classes disagreed, a run existed in three shapes (the CLI report, the widget's
table row, the cohort row) and layer metadata was an untyped dict built and read ad hoc. Pure Python and
NumPy; ``Study`` (``io.study``), ``Geometry`` (``io.nifti``) and ``Segmentation`` (``io.masks``) live with
their readers and writers and are re-exported.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from .io.masks import Segmentation
from .io.nifti import Geometry
from .io.study import Study

__all__ = ["Box", "Detection", "Geometry", "LayerMeta", "RunReport", "Segmentation", "SliceBox", "Study"]

Index3 = tuple[int, int, int]


@dataclass(frozen=True)
class Box:
    """An inclusive 3D voxel box in display indices (z, y, x): ``lo`` and ``hi`` are both inside.

    Iterating gives ``lo, hi``, so ``(z0, y0, x0), (z1, y1, x1) = box`` reads it as the old tuple pair.
    """

    lo: Index3
    hi: Index3

    @classmethod
    def of(cls, lo: Sequence[Any], hi: Sequence[Any]) -> Box:
        """A box from any two index sequences (NumPy integers included)."""
        low, high = tuple(int(v) for v in lo), tuple(int(v) for v in hi)
        if len(low) != 3 or len(high) != 3:
            raise ValueError(f"a box needs two 3D corners, got {low} and {high}")
        if any(a > b for a, b in zip(low, high)):
            raise ValueError(f"box corners out of order: {low} > {high}")
        return cls((low[0], low[1], low[2]), (high[0], high[1], high[2]))

    def __iter__(self) -> Iterator[Index3]:
        return iter((self.lo, self.hi))

    @property
    def shape(self) -> Index3:
        return (self.hi[0] - self.lo[0] + 1, self.hi[1] - self.lo[1] + 1, self.hi[2] - self.lo[2] + 1)

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        """The box as array slices (``volume[box.slices]``)."""
        return (slice(self.lo[0], self.hi[0] + 1), slice(self.lo[1], self.hi[1] + 1), slice(self.lo[2], self.hi[2] + 1))

    def contains(self, point: Sequence[float] | np.ndarray) -> bool:
        """Whether a display-order point (z, y, x) lies inside the box."""
        p = np.asarray(point, dtype=float)
        return bool(np.all(p >= self.lo) and np.all(p <= self.hi))

    def as_lists(self) -> list[list[int]]:
        """JSON-ready ``[[z0, y0, x0], [z1, y1, x1]]``."""
        return [list(self.lo), list(self.hi)]


@dataclass(frozen=True)
class SliceBox:
    """A box in one axial slice: inclusive display indices, and its signature distance (PCNN detection)."""

    z: int
    y0: int
    x0: int
    y1: int
    x1: int
    distance: float

    def to_dict(self) -> dict[str, Any]:
        return {"z": self.z, "y0": self.y0, "x0": self.x0, "y1": self.y1, "x1": self.x1, "distance": round(self.distance, 6)}


@dataclass(frozen=True)
class Detection:
    """A tumour found as a box: by the engine's component analysis or by the PCNN detector (``source``).

    ``box`` is None when nothing was found (the PCNN detector on a study where no slice qualifies):
    ``found`` says so explicitly, and nothing downstream has to guess from an exception.
    """

    box: Box | None
    centroid: tuple[float, float, float] | None = None
    volume_ml: float | None = None
    source: str = "components"
    score: float | None = None  # e.g. the PCNN signature distance; None when the source has none
    slice_boxes: tuple[SliceBox, ...] = ()

    @classmethod
    def nothing(cls, source: str) -> Detection:
        """The explicit "no box found" result."""
        return cls(None, source=source)

    @property
    def found(self) -> bool:
        return self.box is not None

    def contains(self, point: Sequence[float] | np.ndarray) -> bool:
        """Whether a display-order point (z, y, x) lies inside the box (never, when nothing was found)."""
        return self.box is not None and self.box.contains(point)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready; the keys of the CLI report's ``detections`` entries."""
        out: dict[str, Any] = {"box_voxel_display": self.box.as_lists() if self.box else None, "source": self.source}
        if self.centroid is not None:
            out["centroid_voxel_display"] = [round(c, 2) for c in self.centroid]
        if self.volume_ml is not None:
            out["volume_ml"] = round(self.volume_ml, 3)
        if self.score is not None:
            out["score"] = round(self.score, 6)
        return out


STAGES = ("read", "register", "resample", "extract", "preprocess", "inference", "postprocess", "write")
VOLUME_CLASSES = ("NCR", "ED", "ET", "WT", "TC")
ENERGY_COLUMNS = ("cpu_s", "energy_j", "energy_wh", "energy_method")


@dataclass
class RunReport:
    """The one shape of a run. ``as_dict()`` is the CLI's ``--report`` JSON; ``row()`` is a flat table row
    with exactly ``COLUMNS`` (the segment widget's runs table and CSV, and the shared part of a cohort row).

    Stages a run did not go through are "" in a row (a NIfTI study is not registered).
    """

    case: str
    model: str
    backend: str
    provider: str
    timings_s: dict[str, float]
    volumes_ml: dict[str, float]
    slices: int = 0
    detections: list[Detection] = field(default_factory=list)
    peak_memory_mb: float = 0.0
    notes: list[str] = field(default_factory=list)
    cpu_s: float = 0.0
    energy_j: float = 0.0
    energy_method: str = ""  # "measured (RAPL)" or the estimate's method: see napari_lightseg.energy

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "case", "model", "backend", "provider", "total_s", *(f"{s}_s" for s in STAGES), "ms_per_slice",
        *ENERGY_COLUMNS, *(f"{c}_ml" for c in VOLUME_CLASSES), "peak_memory_mb", "notes",
    )

    @property
    def ms_per_slice(self) -> float:
        return 1000.0 * self.timings_s.get("inference", 0.0) / max(self.slices, 1)

    @property
    def energy_wh(self) -> float:
        return self.energy_j / 3600.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the CLI's ``--report``, each cohort case's report)."""
        return {
            "case": self.case, "model": self.model, "backend": self.backend, "provider": self.provider,
            "timings_s": {k: round(v, 4) for k, v in self.timings_s.items()},
            "ms_per_slice": round(self.ms_per_slice, 3), "slices": self.slices,
            "volumes_ml": {k: round(v, 3) for k, v in self.volumes_ml.items()},
            "detections": [d.as_dict() for d in self.detections],
            "peak_memory_mb": round(self.peak_memory_mb, 1), "notes": list(self.notes),
            "cpu_s": round(self.cpu_s, 4), "energy_j": round(self.energy_j, 3),
            "energy_wh": round(self.energy_wh, 6), "energy_method": self.energy_method,
        }

    def row(self) -> dict[str, Any]:
        """A flat row whose keys are exactly ``COLUMNS``, in that order."""
        t = self.timings_s
        values: dict[str, Any] = {
            "case": self.case, "model": self.model, "backend": self.backend, "provider": self.provider,
            "total_s": round(t["total"], 4) if "total" in t else "",
            **{f"{s}_s": round(t[s], 4) if s in t else "" for s in STAGES},
            "ms_per_slice": round(self.ms_per_slice, 2), "cpu_s": round(self.cpu_s, 3),
            "energy_j": round(self.energy_j, 3), "energy_wh": round(self.energy_wh, 6), "energy_method": self.energy_method,
            **{f"{c}_ml": round(self.volumes_ml[c], 3) if c in self.volumes_ml else "" for c in VOLUME_CLASSES},
            "peak_memory_mb": round(self.peak_memory_mb, 1), "notes": "; ".join(self.notes),
        }
        return {key: values[key] for key in self.COLUMNS}


@dataclass
class LayerMeta:
    """What the plugin keeps in ``layer.metadata["lightseg"]`` (``KEY``), typed, with one (de)serialisation.

    ``geometry`` is the source grid (affine, header, voxel order), so the writer restores the file's own
    grid from the layer alone; ``source`` the file the layer was read from (never written); ``convention``
    the label values of a mask's study. Keys other helpers add (clinical inputs, the series table, the
    correction widget's edit state, ...) travel in ``extra`` and come back flat in ``to_dict()``.
    """

    KEY: ClassVar[str] = "lightseg"

    study: str = ""
    role: str = ""  # "image", "labels", "boxes", "box-outlines", or a widget's helper role
    sequence: str | None = None
    geometry: Geometry | None = None
    source: str | None = None
    convention: str | None = None
    model: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The flat dict napari stores (typed fields first, then ``extra``); unset optional fields are left out."""
        out: dict[str, Any] = {"study": self.study, "role": self.role}
        for name in ("sequence", "geometry", "source", "convention", "model"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> LayerMeta:
        """Read a stored dict (None or {} for layers made elsewhere); unknown keys go to ``extra``."""
        data = dict(data or {})
        typed = {f.name for f in fields(cls)} - {"extra"}
        known = {k: data.pop(k) for k in list(data) if k in typed}
        geometry = known.get("geometry")
        if geometry is not None and not isinstance(geometry, Geometry):
            raise TypeError(f"layer metadata: geometry must be a Geometry, got {type(geometry).__name__}")
        for name in ("source", "sequence", "convention", "model"):
            if known.get(name) is not None:
                known[name] = str(known[name])
        return cls(**{"study": str(known.pop("study", "") or ""), "role": str(known.pop("role", "") or ""), **known},
                   extra=data)

    @classmethod
    def of_layer(cls, layer_metadata: Mapping[str, Any] | None) -> LayerMeta:
        """The plugin's metadata of a napari layer's ``metadata`` (empty for layers made elsewhere)."""
        return cls.from_dict((layer_metadata or {}).get(cls.KEY))

    def layer_metadata(self) -> dict[str, Any]:
        """``{"lightseg": ...}``: what a layer's ``metadata`` keyword gets."""
        return {self.KEY: self.to_dict()}
