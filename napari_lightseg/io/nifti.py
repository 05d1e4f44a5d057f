"""NIfTI loading with clear errors, display orientation, and exact-affine saving.

Volumes are shown (and segmented) in one display orientation, axis codes ``DISPLAY_AXCODES``:
axis 0 inferior->superior (the slider steps through axial slices), axis 1 anterior->posterior
(image rows, anterior at the top), axis 2 patient right->left (radiological convention).
``Geometry`` remembers how a file's own array maps to that, so a saved mask gets the file's
own voxel order, affine and header back, bit for bit.
"""
from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.arrayproxy import ArrayProxy
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

from . import _gzip
from .naming import StudyError
from .outputs import OutputPlan

DISPLAY_AXCODES = ("S", "P", "L")
AFFINE_TOLERANCE_MM = 1e-3


@dataclass(frozen=True, eq=False)
class Geometry:
    """A file's grid: its affine and header, and the transform from its array to display order."""

    affine: np.ndarray
    header: nib.Nifti1Header
    disk_shape: tuple[int, int, int]
    ornt: np.ndarray  # disk -> display (nibabel orientation transform)

    @classmethod
    def from_image(cls, img: nib.Nifti1Image) -> Geometry:
        affine = np.asarray(img.affine, dtype=np.float64)
        ornt = ornt_transform(io_orientation(affine), axcodes2ornt(DISPLAY_AXCODES))
        header = nib.Nifti1Header.from_header(img.header)
        shape = img.shape
        return cls(affine, header, (int(shape[0]), int(shape[1]), int(shape[2])), ornt)

    def to_display(self, array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(apply_orientation(array, self.ornt))

    def to_disk(self, array: np.ndarray, order: str = "C") -> np.ndarray:
        """``array`` (display order) in the file's own voxel order; ``order="F"`` for a file writer (NIfTI
        stores x fastest: nibabel then writes the memory as it is instead of transposing it slab by slab)."""
        back = ornt_transform(axcodes2ornt(DISPLAY_AXCODES), io_orientation(self.affine))
        disk = apply_orientation(array, back)
        return np.asfortranarray(disk) if order == "F" else np.ascontiguousarray(disk)

    def display_index_to_disk(self, index: np.ndarray) -> np.ndarray:
        """Map voxel indices (N x 3) from display order to the file's own array order."""
        index = np.atleast_2d(np.asarray(index, dtype=np.float64))
        to_display = inv_ornt_aff(self.ornt, self.disk_shape)  # display index -> disk index
        return (np.c_[index, np.ones(len(index))] @ to_display.T)[:, :3]

    @property
    def display_affine(self) -> np.ndarray:
        """Affine of the display-ordered array (display voxel index -> world mm)."""
        return self.affine @ inv_ornt_aff(self.ornt, self.disk_shape)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along the display axes."""
        x, y, z = (float(v) for v in np.linalg.norm(self.display_affine[:3, :3], axis=0))
        return x, y, z

    @property
    def display_shape(self) -> tuple[int, int, int]:
        x, y, z = (self.disk_shape[int(i)] for i in np.argsort(self.ornt[:, 0]))
        return x, y, z

    def same_grid(self, other: Geometry) -> bool:
        return self.disk_shape == other.disk_shape and np.allclose(
            self.affine, other.affine, atol=AFFINE_TOLERANCE_MM
        )

    def describe_difference(self, other: Geometry) -> str:
        if self.disk_shape != other.disk_shape:
            return f"shape {self.disk_shape} vs {other.disk_shape}"
        diff = float(np.abs(self.affine - other.affine).max())
        return f"affines differ by up to {diff:.4g} mm"


# Header sanity limits, checked before any voxel is read: a corrupt or hostile header must not
# make the loader allocate terabytes.
MAX_AXIS_VOXELS = 4096
MAX_VOXELS = 1024 ** 3
MIN_VOXEL_VOLUME_MM3 = 1e-6
READ_ERRORS: tuple[type[BaseException], ...] = (EOFError, OSError, zlib.error, gzip.BadGzipFile, ValueError)  # a damaged file


def load_nifti(path: str | Path, allow_4d: bool = False, *,
               keep_integers: bool = False) -> tuple[np.ndarray, nib.Nifti1Image]:
    """Read a NIfTI file; return (float32 data as stored, image). Every problem is a StudyError.

    The header is checked before the data are read: absurd sizes, and NaN/infinite or singular
    affines (sform or qform) are refused naming the file; NaN/infinite voxels are refused after.
    ``keep_integers``: integers stored without scaling come back in their stored dtype (no float32
    copy), for callers that only look at the values (a ground truth's label convention).
    """
    path = Path(path)
    try:
        img = nib.load(str(path))
    except FileNotFoundError:
        raise StudyError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise StudyError(f"{path}: is a folder, not a NIfTI file") from None
    except Exception as exc:  # nibabel raises several types for non-NIfTI input
        raise StudyError(f"{path}: not a readable NIfTI file ({_short(exc)})") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise StudyError(f"{path}: not a NIfTI image ({type(img).__name__})")
    shape = img.shape
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) < 3 or min(shape[:3]) < 2:
        raise StudyError(f"{path}: image is {len(img.shape)}D {tuple(img.shape)}; a 3D volume is required")
    if len(shape) > (4 if allow_4d else 3):
        raise StudyError(f"{path}: image is {len(shape)}D {tuple(img.shape)}; a 3D volume is required")
    _check_header_size(path, tuple(int(s) for s in shape))
    _check_affine(path, img)
    try:
        data = _voxels(path, img, keep_integers).reshape(shape)
    except MemoryError:
        raise StudyError(f"{path}: not enough memory to read {tuple(shape)} voxels") from None
    except READ_ERRORS + _gzip.errors() as exc:
        raise StudyError(f"{path}: file is truncated or corrupt ({_short(exc)})") from None
    if not _always_finite(img) and not np.all(np.isfinite(data)):
        bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise StudyError(f"{path}: {bad} voxels are NaN or infinite")
    return data, img


def _voxels(path: Path, img: nib.Nifti1Image, keep_integers: bool) -> np.ndarray:
    """The voxels of ``img`` as nibabel reads them (``np.asarray(img.dataobj, dtype=np.float32)``, or the stored
    integers), with zlib-ng inflating a ``.gz`` file when it is importable (``io._gzip``).

    The header, offset, dtype, order and scaling are nibabel's (its own proxy of this file): only the gzip
    stream under it differs, read straight into the array's buffer and only as far as the header asks.
    The image keeps its own proxy (re-reads the file, with stdlib gzip, if anyone asks for it later).
    """
    proxy: Any = img.dataobj
    raw = keep_integers and _always_finite(img)
    handle = None
    if type(proxy) is ArrayProxy and _gzip.available() and path.name.lower().endswith(".gz"):
        handle = open(path, "rb")  # noqa: SIM115  (closed below, after the proxy has read)
        spec = (proxy.shape, proxy.dtype, proxy.offset, proxy.slope, proxy.inter)
        proxy = ArrayProxy(_gzip.GzipStream(handle), spec, mmap=False, order=proxy.order)
    try:
        return proxy.get_unscaled() if raw else np.asarray(proxy, dtype=np.float32)
    finally:
        if handle is not None:
            handle.close()


def _always_finite(img: nib.Nifti1Image) -> bool:
    """Integers stored without scaling are finite in float32 (saves a pass over each volume)."""
    proxy = img.dataobj
    return (np.issubdtype(img.get_data_dtype(), np.integer)
            and float(getattr(proxy, "slope", np.nan)) == 1.0 and float(getattr(proxy, "inter", np.nan)) == 0.0)


def _check_header_size(path: Path, shape: tuple[int, ...]) -> None:
    """Refuse sizes no MRI has, and sizes this machine cannot hold, before allocating anything."""
    spatial = shape[:3]
    voxels = int(np.prod(shape, dtype=np.float64))
    if max(spatial) > MAX_AXIS_VOXELS or int(np.prod(spatial, dtype=np.float64)) > MAX_VOXELS:
        raise StudyError(f"{path}: header claims {'x'.join(map(str, shape))} voxels; more than an MRI volume "
                         f"can hold (at most {MAX_AXIS_VOXELS} per axis, {MAX_VOXELS:,} in all): corrupt header?")
    needed = voxels * 4  # float32 copy
    available = _available_memory_bytes()
    if available is not None and needed > available:
        raise StudyError(f"{path}: {'x'.join(map(str, shape))} voxels need {needed / 2**30:.1f} GiB; "
                         f"only {available / 2**30:.1f} GiB of memory is available")


def _available_memory_bytes() -> int | None:
    """Memory the process can still get (Linux MemAvailable, else free pages); None when unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def _check_affine(path: Path, img: nib.Nifti1Image) -> None:
    """The voxel-to-world transform must be finite and invertible (sform and qform when set)."""
    header = img.header
    candidates = [("affine", img.affine)]
    if int(header["sform_code"]) > 0:
        candidates.append(("sform", header.get_sform()))
    if int(header["qform_code"]) > 0:
        candidates.append(("qform", header.get_qform()))
    for name, affine in candidates:
        matrix = np.asarray(affine, dtype=np.float64)
        if not np.all(np.isfinite(matrix)):
            raise StudyError(f"{path}: the {name} (voxel-to-world transform) holds NaN or infinite values")
        volume = abs(float(np.linalg.det(matrix[:3, :3])))
        if not volume > MIN_VOXEL_VOLUME_MM3:
            raise StudyError(f"{path}: the {name} (voxel-to-world transform) is singular "
                             f"(voxel volume {volume:.3g} mm3): corrupt header?")


def save_nifti_like(path: str | Path, data: np.ndarray, geometry: Geometry, overwrite: bool = False, *,
                    plan: OutputPlan | None = None, inputs: Iterable[str | Path | None] = ()) -> Path:
    """Write ``data`` (already in the file's own array order) with the source affine and header.

    Safe by construction (``io.outputs``): written to a temp file in the target folder, then renamed;
    refuses to overwrite unless asked, and never writes onto one of ``inputs``. With ``plan`` the file
    is written into the caller's plan (the caller commits, with all its other outputs).
    """
    path = Path(path)
    if not str(path).lower().endswith((".nii", ".nii.gz")):
        raise StudyError(f"{path}: output must end in .nii or .nii.gz")
    if tuple(data.shape) != geometry.disk_shape:
        raise StudyError(f"{path}: data shape {data.shape} does not match the source grid {geometry.disk_shape}")
    header = geometry.header.copy()
    header.set_data_dtype(data.dtype)
    header.set_data_shape(data.shape)
    header["scl_slope"], header["scl_inter"] = 1.0, 0.0
    header["cal_min"], header["cal_max"] = 0.0, 0.0
    img = nib.Nifti1Image(data, None, header=header)
    # keep the exact sform/qform (and their codes) of the source
    img.set_sform(geometry.header.get_sform(), int(geometry.header["sform_code"]))
    img.set_qform(geometry.header.get_qform(), int(geometry.header["qform_code"]))
    if plan is not None:
        plan.write(path, lambda temp: write_nifti(img, temp), "mask")
        return path
    with OutputPlan(inputs, overwrite=overwrite) as own:
        own.write(path, lambda temp: write_nifti(img, temp), "mask")
        own.commit()
    return path


def write_nifti(img: nib.Nifti1Image, path: str | Path) -> None:
    """``nib.save(img, path)``; a ``.gz`` file compressed by zlib-ng when it is importable (``io._gzip``).

    The decompressed bytes are nibabel's own (``img.to_bytes()``, what it writes into the gzip stream);
    the file is one standard gzip member. Without zlib-ng nibabel writes it, as before.
    """
    packed = _gzip.compress(img.to_bytes()) if str(path).lower().endswith(".gz") else None
    if packed is None:  # not gzip, or no zlib-ng
        nib.save(img, str(path))
    else:
        Path(path).write_bytes(packed)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]
