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

    def __init__(self, cases: list[tuple[np.ndarray, np.ndarray]], patch: int = 128, tumour_fraction: float = 0.7, seed: int = 0):
        self.cases = cases
        self.patch = patch
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
            image, label = self._crop(img[:, z].astype(np.float32), lab[z], bool(tumour))
            images.append(image)
            labels.append(label)
        x = torch.from_numpy(np.stack(images))
        y = torch.from_numpy(np.stack(labels).astype(np.int64))
        return augment(x, y, self.rng)


def augment(x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-right flip, rotation (+-15 deg) and scale (0.85-1.15), per-channel intensity scale/shift, gamma."""
    n = x.shape[0]
    flip = torch.from_numpy(rng.random(n) < 0.5)
    x[flip] = x[flip].flip(-1)
    y[flip] = y[flip].flip(-1)
    angle = torch.from_numpy(rng.uniform(-np.pi / 12, np.pi / 12, n)).float()
    scale = torch.from_numpy(rng.uniform(0.85, 1.15, n)).float()
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros(n)], 1), torch.stack([sin, cos, torch.zeros(n)], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    y = F.grid_sample(y[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)[:, 0].long()
    brain = x.abs().sum(1, keepdim=True) > 0
    gain = torch.from_numpy(rng.uniform(0.9, 1.1, (n, x.shape[1], 1, 1))).float()
    shift = torch.from_numpy(rng.uniform(-0.1, 0.1, (n, x.shape[1], 1, 1))).float()
    gamma = torch.from_numpy(rng.uniform(0.8, 1.25, (n, x.shape[1], 1, 1))).float()
    lo, hi = -5.0, 5.0  # CLIP_Z range: gamma on the [0, 1]-mapped intensities
    unit = ((x - lo) / (hi - lo)).clamp(0, 1) ** gamma
    x = (unit * (hi - lo) + lo) * gain + shift
    return x * brain, y
