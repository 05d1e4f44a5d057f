"""A synthetic multi-sequence glioma study on real anatomy, available offline.

Anatomy comes from the MNI152 (ICBM 2009a symmetric) T1 template and its grey- and white-matter
probability maps that nilearn ships inside its package (the files behind
``nilearn.datasets.load_mni152_template`` / ``_gm_`` / ``_wm_template``; read directly with
nibabel because importing nilearn takes seconds). Brain mask = template > 0 (it is skull-stripped),
CSF = brain minus GM minus WM.

Grid: the BraTS one, so models trained on BraTS see familiar input: 240 x 240 x 155 voxels of 1 mm,
array axes L, P, S (LPS, as in the BraTS files). The template is flipped to LPS, its 155 axial slices
holding brain are kept and it is zero-padded in-plane; the affine maps voxels to MNI mm.

Four sequences are mixed from per-tissue intensities (CSF, GM, WM and the three tumour classes),
with a smooth multiplicative bias field and Gaussian noise, rounded to integers and zero outside
the brain. A glioma is placed in the deep white matter of one hemisphere at a seed-dependent spot:
nested, noise-perturbed, randomly rotated ellipsoids give a necrotic core (NCR), an enhancing rim
(ET) and surrounding edema (ED) that spreads along white matter within that hemisphere.
Deterministic per seed; about 1 s on one CPU core (the template is read once per process).
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from .io import SEQUENCES, Geometry, Study, from_internal, save_nifti_like
from .layers import LayerData, study_layers

SHAPE = (240, 240, 155)
# In-plane padding of the 197 x 233 template (after flipping to LPS) and the axial slices kept.
_PAD_BEFORE = (21, 3)
_Z_SLICES = slice(0, 155)
_MIDLINE_L = 119  # L index of MNI x = 0 on that grid

# Relative intensity per tissue: CSF, GM, WM, NCR, ED, ET (WM of T1 ~ 1).
_CONTRAST: dict[str, tuple[float, ...]] = {
    "flair": (0.12, 0.72, 0.55, 0.60, 1.05, 0.85),
    "t1": (0.28, 0.62, 0.90, 0.32, 0.55, 0.60),
    "t1ce": (0.30, 0.64, 0.88, 0.26, 0.56, 1.30),
    "t2": (1.00, 0.62, 0.42, 0.95, 0.85, 0.70),
}
_SCALE = {"flair": 420.0, "t1": 520.0, "t1ce": 560.0, "t2": 700.0}  # int-like ranges (about 0-800)
_NOISE = 0.025  # Gaussian noise, fraction of the sequence scale
_BIAS = 0.10  # bias field amplitude (log scale)

# write_sample_case naming (= label convention) -> separator and file suffix per sequence / seg
_NAMINGS: dict[str, tuple[str, dict[str, str]]] = {
    "brats2021": ("_", {"flair": "flair", "t1": "t1", "t1ce": "t1ce", "t2": "t2", "seg": "seg"}),
    "brats2023": ("-", {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w", "seg": "seg"}),
}


@lru_cache(maxsize=1)
def _anatomy() -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """(affine of the LPS grid, brain mask and tissue maps in display order, brain voxel indices).

    Read once per process; everything later works in display order (no transposes of volumes)
    and on brain voxels only, which keeps generation fast.
    """
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the sample study needs nilearn (its bundled MNI152 template)")
    folder = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    grids = {}
    for key in ("t1", "gm", "wm"):
        img = nib.nifti1.load(folder / f"mni_icbm152_{key}_tal_nlin_sym_09a_converted.nii.gz")
        grids[key] = _to_grid(np.asarray(img.dataobj))
    # the template is RAS: flip x and y to LPS, keep the axial slices, pad in-plane
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = [img.shape[0] - 1, img.shape[1] - 1]
    shift = np.eye(4)
    shift[:3, 3] = [-_PAD_BEFORE[0], -_PAD_BEFORE[1], _Z_SLICES.start]
    affine = img.affine @ flip @ shift
    geometry = _disk_geometry(affine)
    brain = geometry.to_display(grids["t1"] > 0)
    gm, wm = (geometry.to_display(grids[k]) / np.float32(255) for k in ("gm", "wm"))
    gm, wm = gm * brain, wm * brain
    tissue = {"csf": np.clip(brain - gm - wm, 0, 1), "gm": gm, "wm": wm, "brain": brain}
    return affine, tissue, np.flatnonzero(brain)


def _to_grid(template: np.ndarray) -> np.ndarray:
    out = np.zeros(SHAPE, dtype=np.float32)
    src = template[::-1, ::-1, _Z_SLICES]
    x0, y0 = _PAD_BEFORE
    out[x0:x0 + src.shape[0], y0:y0 + src.shape[1], :] = src
    return out


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Smooth random field scaled to unit standard deviation (irregular tumour borders)."""
    field = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return field / max(float(field.std()), 1e-6)


def _glioma(rng: np.random.Generator, brain: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """Internal classes (0 background, 1 NCR, 2 ED, 3 ET) in display order (S, P, L)."""
    hemisphere = rng.choice([-1, 1])
    centre_x = _MIDLINE_L + hemisphere * 25  # 25 mm off the midline, left or right
    box = (slice(70, 110), slice(90, 160), slice(centre_x - 8, centre_x + 9))  # deep WM, MNI z -2..38, y -59..11
    candidates = np.argwhere(wm[box] > 0.95) + [s.start for s in box]
    centre = candidates[rng.integers(len(candidates))]

    core_radius = rng.uniform(9.0, 15.0)
    edema_radius = core_radius + rng.uniform(8.0, 16.0)
    half = int(edema_radius * 1.6) + 4
    lo = np.maximum(centre - half, 0)
    hi = np.minimum(centre + half + 1, brain.shape)
    region = tuple(slice(a, b) for a, b in zip(lo, hi))
    grid = np.stack(np.meshgrid(*[np.arange(a, b) - c for a, b, c in zip(lo, hi, centre)], indexing="ij"), -1)
    rotation, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    axes = rng.uniform(0.75, 1.3, size=3)
    radius = np.linalg.norm((grid.astype(np.float32) @ rotation.astype(np.float32)) / axes.astype(np.float32), axis=-1)

    shape = radius.shape
    core = radius < core_radius * (1 + 0.18 * _smooth_noise(rng, shape, 3.0))
    necrosis = radius < core_radius * rng.uniform(0.55, 0.75) * (1 + 0.25 * _smooth_noise(rng, shape, 2.5))
    edema = radius < edema_radius * (1 + 0.25 * _smooth_noise(rng, shape, 5.0))
    edema &= wm[region] + 0.3 > rng.uniform(0, 0.6, shape).astype(np.float32)  # spreads along white matter
    edema = ndi.binary_opening(edema, iterations=1)

    local = np.zeros(shape, dtype=np.uint8)
    local[edema] = 2
    local[core] = 3
    local[core & necrosis] = 1
    local[~brain[region]] = 0
    other_side = hemisphere * (np.arange(lo[2], hi[2]) - _MIDLINE_L) < 2  # the falx stops the spread
    local[:, :, other_side] = 0
    labels = np.zeros(brain.shape, dtype=np.uint8)
    labels[region] = local
    return labels


def _sequences(rng: np.random.Generator, tissue: dict[str, np.ndarray], inside: np.ndarray,
               labels: np.ndarray) -> dict[str, np.ndarray]:
    """Integer-valued float32 volumes in display order, zero outside the brain."""
    bbox = ndi.find_objects((labels > 0).astype(np.uint8))[0]
    bbox = tuple(slice(max(s.start - 2, 0), s.stop + 2) for s in bbox)
    # tumour fractions, softened by one voxel so borders have partial volume
    fractions = [ndi.gaussian_filter((labels[bbox] == c).astype(np.float32), 0.7) for c in (1, 2, 3)]
    tumour = np.sum(fractions, axis=0)
    # smooth bias field over the brain voxels: exp of a quadratic per axis
    coords = [(np.float32(2) * i / np.float32(n - 1) - 1) for i, n in
              zip(np.unravel_index(inside, labels.shape), labels.shape)]
    flat = {k: tissue[k].ravel()[inside] for k in ("csf", "gm", "wm")}

    out = {}
    for seq in SEQUENCES:
        c = _CONTRAST[seq]
        volume = np.zeros(labels.shape, dtype=np.float32)
        volume.ravel()[inside] = c[0] * flat["csf"] + c[1] * flat["gm"] + c[2] * flat["wm"]
        local = volume[bbox] * (1 - tumour)
        for weight, value in zip(fractions, c[3:]):
            local += weight * value
        volume[bbox] = local * tissue["brain"][bbox]
        coeffs = rng.uniform(-_BIAS, _BIAS, size=(3, 2)).astype(np.float32)
        bias = np.exp(sum(a * x + b * x * x for x, (a, b) in zip(coords, coeffs)))
        values = volume.ravel()[inside] * bias + rng.standard_normal(inside.size, dtype=np.float32) * _NOISE
        volume.ravel()[inside] = np.rint(np.clip(values, 0, None) * _SCALE[seq])
        out[seq] = volume
    return out


def _disk_geometry(affine: np.ndarray) -> Geometry:
    img = nib.Nifti1Image(np.zeros(SHAPE, dtype=np.int16), affine)
    img.set_sform(affine, code="mni")
    img.set_qform(affine, code="mni")
    return Geometry.from_image(img)


def make_sample_study(seed: int = 0) -> Study:
    """A synthetic glioma case (FLAIR, T1, T1ce, T2 and ground truth), deterministic per seed."""
    rng = np.random.default_rng(seed)
    affine, tissue, inside = _anatomy()
    labels = _glioma(rng, tissue["brain"], tissue["wm"])
    return Study(
        name=f"sample-glioma-{seed}",
        images=_sequences(rng, tissue, inside, labels),
        geometry=_disk_geometry(affine),
        labels=labels,  # no file convention: saved as BraTS 2021 (1/2/4) by default
    )


def sample_glioma() -> list[LayerData]:
    """npe2 sample data: the seed-0 synthetic glioma with its ground truth."""
    return study_layers(make_sample_study(0))


def write_sample_case(folder: str | Path, seed: int = 0, naming: str = "brats2021") -> Path:
    """Write the sample as NIfTI files in ``folder/<case>/`` and return that case folder.

    ``naming`` brats2021: ``<case>_flair`` .. ``_seg`` with labels 1/2/4; brats2023: ``<case>-t2f``
    .. ``-seg`` with labels 1/2/3. Images are int16 on the sample's LPS grid. Existing files are replaced.
    """
    if naming not in _NAMINGS:
        raise ValueError(f"unknown naming {naming!r}; use one of {sorted(_NAMINGS)}")
    separator, suffixes = _NAMINGS[naming]
    study = make_sample_study(seed)
    case = Path(folder) / study.name
    case.mkdir(parents=True, exist_ok=True)
    geometry = study.geometry
    for seq in SEQUENCES:
        data = geometry.to_disk(study.images[seq]).astype(np.int16)
        save_nifti_like(case / f"{study.name}{separator}{suffixes[seq]}.nii.gz", data, geometry, overwrite=True)
    assert study.labels is not None  # the sample always has its ground truth
    seg = geometry.to_disk(from_internal(study.labels, naming))
    save_nifti_like(case / f"{study.name}{separator}{suffixes['seg']}.nii.gz", seg, geometry, overwrite=True)
    return case
