"""Bad-input corpus: each bad or unusual input built from a clean case, synthetic or real.

Every maker writes into a folder the test owns (``tmp_path``); a real case is read, never modified
or copied into the project. Case makers take a clean case folder and return a new case folder;
file makers write one NIfTI file and return its path.
"""
from __future__ import annotations

import gzip
import hashlib
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import nibabel as nib
import numpy as np
from helpers import blob_study

from napari_lightseg.io import SEQUENCES, save_nifti_like
from napari_lightseg.io.naming import is_junk, role_of


# ------------------------------------------------------------------ clean cases
def synthetic_case(folder: Path, name: str = "blob", shape: tuple[int, int, int] = (24, 40, 36)) -> Path:
    """A small clean BraTS-2021-named case (int16 images, labels 0/2) from ``helpers.blob_study``."""
    study = blob_study(shape)
    case = folder / name
    case.mkdir(parents=True)
    for seq in SEQUENCES:
        data = study.geometry.to_disk(np.rint(study.images[seq])).astype(np.int16)
        save_nifti_like(case / f"{name}_{seq}.nii.gz", data, study.geometry)
    save_nifti_like(case / f"{name}_seg.nii.gz", study.geometry.to_disk(study.labels).astype(np.uint8), study.geometry)
    return case


def four_d_file(case: Path, path: Path) -> Path:
    """The case's four sequences as one 4D file in model order (FLAIR, T1, T1ce, T2)."""
    files = {role_of(p): p for p in case.iterdir() if not is_junk(p)}
    first = nib.load(str(files["flair"]))
    data = np.stack([np.asarray(nib.load(str(files[s])).dataobj) for s in SEQUENCES], axis=-1)
    nib.save(nib.Nifti1Image(data, first.affine), str(path))
    return path


# ------------------------------------------------------------------ case variants
VolumeChange = Callable[[str, np.ndarray], np.ndarray]


def variant_case(clean: Path, dest: Path, change: VolumeChange, dtype: type = np.float32) -> Path:
    """Copy of a case with ``change(role, data)`` applied to every sequence (labels copied as they are)."""
    dest.mkdir(parents=True)
    for path in sorted(clean.iterdir()):
        role = role_of(path)
        if role is None or is_junk(path):
            continue
        if role == "seg":
            shutil.copyfile(path, dest / path.name)
            continue
        img = nib.load(str(path))
        data = change(role, np.asarray(img.dataobj, dtype=np.float64)).astype(dtype)
        out = nib.Nifti1Image(data, img.affine, header=img.header)
        out.set_data_dtype(dtype)
        out.header["scl_slope"], out.header["scl_inter"] = 1.0, 0.0
        nib.save(out, str(dest / path.name))
    return dest


def blank_flair(clean: Path, dest: Path) -> Path:
    return variant_case(clean, dest, lambda role, v: np.zeros_like(v) if role == "flair" else v, np.int16)


def constant_flair(clean: Path, dest: Path) -> Path:
    return variant_case(clean, dest, lambda role, v: np.full_like(v, 500) if role == "flair" else v, np.int16)


def scaled(clean: Path, dest: Path, factor: float = 1e30) -> Path:
    return variant_case(clean, dest, lambda role, v: v * factor)


def shifted_background(clean: Path, dest: Path, offset: float = -2000) -> Path:
    return variant_case(clean, dest, lambda role, v: v + offset, np.int16)


def mask_as_flair(clean: Path, dest: Path) -> Path:
    """FLAIR replaced by a 3-valued map: a label volume given as an image."""
    return variant_case(clean, dest, lambda role, v: np.digitize(v, np.percentile(v[v > 0], [50, 90])) if role == "flair" else v,
                        np.int16)


def with_os_junk(clean: Path) -> Path:
    """macOS AppleDouble twins (``._<file>``), ``.DS_Store`` and ``Thumbs.db`` beside the files (in place)."""
    for path in list(clean.iterdir()):
        (clean / f"._{path.name}").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 80)
    (clean / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (clean / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    return clean


# ------------------------------------------------------------------ bad files
def absurd_header(path: Path, shape: tuple[int, ...] = (30000, 30000, 30000)) -> Path:
    """A NIfTI header claiming ``shape`` int16 voxels, followed by a few bytes (.nii or .nii.gz)."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.int16)
    header.set_sform(np.eye(4), 1)
    header["vox_offset"] = 352
    raw = header.binaryblock + b"\x00" * 4 + b"\x00" * 1000
    path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)
    return path


def bad_affine(path: Path, kind: str = "nan", shape: tuple[int, int, int] = (8, 8, 6)) -> Path:
    """A volume whose sform (kind ``nan``/``singular``) or qform (``nan-qform``) is degenerate."""
    img = nib.Nifti1Image(np.ones(shape, np.int16), np.eye(4))
    header = img.header
    if kind == "nan":
        header["srow_x"] = [np.nan, 0, 0, 0]
        header["sform_code"] = 1
    elif kind == "singular":
        header["srow_x"], header["srow_y"], header["srow_z"] = [1, 0, 0, 0], [2, 0, 0, 0], [0, 0, 1, 0]
        header["sform_code"], header["qform_code"] = 1, 0
    elif kind == "nan-qform":
        header["qoffset_x"] = np.nan
        header["sform_code"], header["qform_code"] = 0, 1
    else:
        raise ValueError(kind)
    raw = header.binaryblock + b"\x00" * 4 + np.ones(shape, np.int16).tobytes(order="F")
    path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)
    return path


def image_as_labels(clean: Path, path: Path) -> Path:
    """The case's FLAIR saved under a mask's name: an image where labels are expected."""
    flair = next(p for p in clean.iterdir() if role_of(p) == "flair")
    shutil.copyfile(flair, path)
    return path


# ------------------------------------------------------------------ hashing
def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def hashes(paths: Iterable[Path]) -> dict[str, str]:
    """sha256 of every file under the given files/folders (hidden files included), by path."""
    found: dict[str, str] = {}
    for root in paths:
        root = Path(root)
        for path in sorted(root.rglob("*") if root.is_dir() else [root]):
            if path.is_file() and not path.is_symlink():
                found[str(path)] = sha256(path)
    return found
