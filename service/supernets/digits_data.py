"""The built-in supernet's data: scikit-learn's handwritten digits, upsampled and distorted.

The 8×8 digits ship inside scikit-learn, so nothing is downloaded. Clean digits are too easy to
separate small networks from large ones, so every image is upsampled to 32×32 and distorted by a
random affine warp and pixel noise. The held-out split gets one fixed distortion per image (seeded),
so its accuracy is reproducible; training draws fresh distortions every epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

IMAGE_SIZE = 32
NUM_CLASSES = 10
DATASET_NAME = "sklearn-digits-distorted-32"
_SPLIT_SEED = 20261121
_HELD_OUT_SEED = 7
_HELD_OUT_FRACTION = 0.3


@dataclass(frozen=True)
class DigitsSplits:
    train_images: torch.Tensor  # (N, 1, 32, 32), clean, upsampled
    train_labels: torch.Tensor
    held_out_images: torch.Tensor  # (M, 1, 32, 32), fixed distortion
    held_out_labels: torch.Tensor


def _upsample(images_8x8: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images_8x8.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
    return (x - 0.5) / 0.5


def distort(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random rotation (±25°), scale (0.8–1.15), shear, shift (±15 %) and Gaussian pixel noise."""
    n = images.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator)

    angle = uniform(-25, 25) * torch.pi / 180
    scale = uniform(0.8, 1.15)
    shear = uniform(-0.25, 0.25)
    tx, ty = uniform(-0.15, 0.15), uniform(-0.15, 0.15)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos, -sin + shear, tx], dim=1),
            torch.stack([sin, cos, ty], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    warped = F.grid_sample(images, grid, padding_mode="border", align_corners=False)
    noise = 0.35 * torch.randn(warped.shape, generator=generator)
    return warped + noise


def _split() -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
    """All images (clean, upsampled), labels, and the held-out and training indices."""
    digits = load_digits()
    rng = np.random.default_rng(_SPLIT_SEED)
    order = rng.permutation(len(digits.target))
    n_held_out = int(len(order) * _HELD_OUT_FRACTION)
    images = _upsample(digits.data)
    labels = torch.from_numpy(digits.target.astype(np.int64))
    return images, labels, order[:n_held_out], order[n_held_out:]


def held_out_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out split before its distortion (to distort it other ways), and its labels."""
    images, labels, held_idx, _ = _split()
    return images[held_idx], labels[held_idx]


def load_splits() -> DigitsSplits:
    images, labels, held_idx, train_idx = _split()
    held_out = distort(images[held_idx], torch.Generator().manual_seed(_HELD_OUT_SEED))
    return DigitsSplits(
        train_images=images[train_idx],
        train_labels=labels[train_idx],
        held_out_images=held_out,
        held_out_labels=labels[held_idx],
    )
