"""One acquired sequence in its own grid, as read from a DICOM series or a NIfTI file.

Clinical studies arrive with every sequence on its own grid (voxel size, slice thickness,
orientation). ``SeriesVolume`` is the common currency between the readers (``io.dicom``,
NIfTI), co-registration (``preprocess.registration``) and the writers that put results back
into each source grid (NIfTI, DICOM-SEG). Geometry lives in the SimpleITK image (physical
space in LPS millimetres, SimpleITK's convention).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import SimpleITK as sitk


@dataclass
class SeriesVolume:
    """A scalar float32 volume in its own grid, with where it came from."""

    image: sitk.Image  # SimpleITK image: origin, spacing, direction (LPS) and voxels
    source: str  # the NIfTI file, or the folder holding the DICOM series
    description: str = ""  # SeriesDescription / ProtocolName, or the file name
    series_uid: str | None = None
    series_number: int | None = None
    files: tuple[str, ...] = ()  # DICOM files in the order the volume's slices were read
    sequence: str | None = None  # identified role: flair, t1, t1ce, t2 (None: unknown)
    notes: list[str] = field(default_factory=list)  # how the role was decided, warnings

    @property
    def size(self) -> tuple[int, int, int]:
        """Voxels along x, y, z (SimpleITK order)."""
        return tuple(int(v) for v in self.image.GetSize())  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in self.image.GetSpacing())  # type: ignore[return-value]

    def describe(self) -> str:
        """One line for tables and messages: number, description, size and voxel size."""
        number = f"#{self.series_number} " if self.series_number is not None else ""
        size = "x".join(str(v) for v in self.size)
        spacing = "x".join(f"{v:.3g}" for v in self.spacing)
        return f"{number}{self.description or self.source} ({size} voxels, {spacing} mm)"
