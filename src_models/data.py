"""BraTS-style training data: study discovery and preprocessing come from the plugin itself.

Fixed split of ``../shared/data/brats18`` (documented in the README and the model cards):
``VALIDATION_CASES`` come from four institutions and are never trained on.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from napari_lightseg.inference import context_indices
from napari_lightseg.io import SEQUENCES, load_study
from napari_lightseg.preprocess import prepare

DATA_ROOT = Path(os.environ.get("LIGHTSEG_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
VALIDATION_CASES = (
    "Brats18_2013_20_1",     # 2013 challenge
    "Brats18_CBICA_ALU_1",   # CBICA
    "Brats18_TCIA02_606_1",  # TCIA02, high grade
    "Brats18_TCIA10_639_1",  # TCIA10, lower grade; intensities up to 32767
)


def brats18_cases(root: Path = DATA_ROOT) -> tuple[list[Path], list[Path]]:
    """(training, validation) case folders of brats18."""
    folder = Path(root) / "brats18"
    cases = sorted(p for p in folder.iterdir() if p.is_dir())
    val = [p for p in cases if p.name in VALIDATION_CASES]
    return [p for p in cases if p.name not in VALIDATION_CASES], val


def load_case(path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """Preprocessed (4, z, y, x) float16 image and (z, y, x) uint8 labels, brain-cropped."""
    study = load_study(path)
    image, crop = prepare(study.stack(SEQUENCES))
    labels = np.zeros(image.shape[1:], dtype=np.uint8)
    z, y, x = crop.slices
    region = study.labels[z, y, x]
    labels[: region.shape[0], : region.shape[1], : region.shape[2]] = region
    return image.astype(np.float16), labels


class SliceSampler:
    """Draws augmented batches of axial slices; ``tumour_fraction`` of them contain tumour."""

    def __init__(self, cases: list[tuple[np.ndarray, np.ndarray]], patch: int = 128, tumour_fraction: float = 0.7, seed: int = 0,
                 context: int = 0, strong: bool = False):
        self.cases = cases
        self.patch = patch
        self.context = context  # neighbouring slices on each side, stacked offset-major (napari_lightseg.inference)
        self.strong = strong  # elastic, bias field, low resolution, noise on top of the basic augmentation
        self.tumour_fraction = tumour_fraction
        self.rng = np.random.default_rng(seed)
        self.all_slices = [(c, z) for c, (_, lab) in enumerate(cases) for z in range(lab.shape[0])]
        self.tumour_slices = [(c, z) for c, (_, lab) in enumerate(cases) for z in range(lab.shape[0]) if lab[z].any()]

    def _crop(self, img: np.ndarray, lab: np.ndarray, centre_on_tumour: bool) -> tuple[np.ndarray, np.ndarray]:
        p = self.patch
        pad_y, pad_x = max(p - lab.shape[0], 0), max(p - lab.shape[1], 0)
        if pad_y or pad_x:
            img = np.pad(img, ((0, 0), (0, pad_y), (0, pad_x)))
            lab = np.pad(lab, ((0, pad_y), (0, pad_x)))
        h, w = lab.shape
        if centre_on_tumour and lab.any():
            ys, xs = np.nonzero(lab)
            i = self.rng.integers(len(ys))
            cy, cx = ys[i] + self.rng.integers(-p // 4, p // 4 + 1), xs[i] + self.rng.integers(-p // 4, p // 4 + 1)
            y0, x0 = int(np.clip(cy - p // 2, 0, h - p)), int(np.clip(cx - p // 2, 0, w - p))
        else:
            y0, x0 = int(self.rng.integers(0, h - p + 1)), int(self.rng.integers(0, w - p + 1))
        return img[:, y0 : y0 + p, x0 : x0 + p], lab[y0 : y0 + p, x0 : x0 + p]

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = [], []
        for _ in range(size):
            tumour = self.rng.random() < self.tumour_fraction and self.tumour_slices
            pool = self.tumour_slices if tumour else self.all_slices
            c, z = pool[self.rng.integers(len(pool))]
            img, lab = self.cases[c]
            index = context_indices(img.shape[1], z, z + 1, self.context)[0]
            stacked = img[:, index].transpose(1, 0, 2, 3).reshape(-1, *img.shape[2:])
            image, label = self._crop(stacked.astype(np.float32), lab[z], bool(tumour))
            images.append(image)
            labels.append(label)
        x = torch.from_numpy(np.stack(images))
        y = torch.from_numpy(np.stack(labels).astype(np.int64))
        return augment(x, y, self.rng, strong=self.strong)


def _per_sequence(rng: np.random.Generator, low: float, high: float, n: int, channels: int) -> torch.Tensor:
    """One random value per sample and sequence, repeated over the context slices (offset-major channels)."""
    values = rng.uniform(low, high, (n, len(SEQUENCES)))
    return torch.from_numpy(np.tile(values, (1, channels // len(SEQUENCES)))[:, :, None, None]).float()


def _elastic(theta: torch.Tensor, shape: list[int], rng: np.random.Generator) -> torch.Tensor:
    """Affine grid plus a smooth random displacement (5x5 control points, up to ~3 % of the patch)."""
    grid = F.affine_grid(theta, shape, align_corners=False)
    n, h, w = shape[0], shape[2], shape[3]
    strength = torch.from_numpy(rng.uniform(0.0, 0.03, (n, 1, 1, 1))).float()
    coarse = torch.from_numpy(rng.standard_normal((n, 2, 5, 5))).float() * strength
    return grid + F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)


def _bias_field(n: int, channels: int, h: int, w: int, rng: np.random.Generator) -> torch.Tensor:
    """Smooth multiplicative fields (second-order polynomial in x, y; about +-30 %) per sample and sequence."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    basis = torch.stack([xs, ys, xs * ys, xs**2 - 0.5, ys**2 - 0.5])  # (5, h, w)
    coeffs = torch.from_numpy(rng.uniform(-0.3, 0.3, (n, len(SEQUENCES), 5))).float()
    fields = torch.exp(torch.einsum("nsk,khw->nshw", coeffs, basis))
    return fields.repeat(1, channels // len(SEQUENCES), 1, 1)


def _low_resolution(x: torch.Tensor, rng: np.random.Generator, p: float = 0.25) -> torch.Tensor:
    """Simulate thick slices or a lower in-plane resolution: down- then up-sample along one in-plane axis."""
    for i in np.flatnonzero(rng.random(x.shape[0]) < p):
        h, w = x.shape[2:]
        factor = rng.uniform(1.5, 3.0)
        size = (max(8, int(h / factor)), w) if rng.random() < 0.5 else (h, max(8, int(w / factor)))
        small = F.interpolate(x[i : i + 1], size=size, mode="area")
        x[i : i + 1] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    return x


def augment(x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator, strong: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-right flip, rotation (+-15 deg) and scale (0.85-1.15), per-sequence intensity scale/shift, gamma;
    ``strong`` adds elastic deformation, a bias field, simulated low resolution and Gaussian noise."""
    n = x.shape[0]
    flip = torch.from_numpy(rng.random(n) < 0.5)
    x[flip] = x[flip].flip(-1)
    y[flip] = y[flip].flip(-1)
    angle = torch.from_numpy(rng.uniform(-np.pi / 12, np.pi / 12, n)).float()
    scale = torch.from_numpy(rng.uniform(0.85, 1.15, n)).float()
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros(n)], 1), torch.stack([sin, cos, torch.zeros(n)], 1)], 1)
    if strong:
        grid = _elastic(theta, list(x.shape), rng)
    else:
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    y = F.grid_sample(y[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)[:, 0].long()
    brain = x.abs().sum(1, keepdim=True) > 0
    c = x.shape[1]
    if c % len(SEQUENCES):
        raise ValueError(f"{c} channels is not a whole number of {len(SEQUENCES)}-sequence slices")
    gain = _per_sequence(rng, 0.9, 1.1, n, c)
    shift = _per_sequence(rng, -0.1, 0.1, n, c)
    gamma = _per_sequence(rng, 0.8, 1.25, n, c)
    lo, hi = -5.0, 5.0  # CLIP_Z range: gamma on the [0, 1]-mapped intensities
    unit = ((x - lo) / (hi - lo)).clamp(0, 1) ** gamma
    if strong:
        biased = torch.from_numpy(rng.random(n) < 0.3)
        unit[biased] = (unit[biased] * _bias_field(int(biased.sum()), c, *x.shape[2:], rng)).clamp(0, 1)
    x = (unit * (hi - lo) + lo) * gain + shift
    if strong:
        x = _low_resolution(x, rng)
        noisy = torch.from_numpy(rng.random((n, 1, 1, 1)) < 0.3).float()
        sigma = torch.from_numpy(rng.uniform(0.0, 0.1, (n, 1, 1, 1))).float()
        x = x + noisy * sigma * torch.randn_like(x)
    return x * brain, y
