"""The `bert-digits` family's data: scikit-learn's handwritten 8×8 digits as 8 row tokens.

Nothing is downloaded: the 1,797 digits ship with scikit-learn. Each image becomes a sequence of
8 tokens, one per pixel row (8 pixels each), as a tiny ViT reads an image in patches. The bases
are split 70/30 between training and held-out. Training draws fresh distorted images every epoch
from the training bases; the held-out split is 5,000 draws from the held-out bases made once with
a fixed seed (539 undistorted images rank sub-networks too noisily, as docs/supernet.md found for
`mbv3-digits`). Distortions: rotation ±12°, scale 0.9–1.1, shift ±0.6 px, contrast 0.7–1.0 and
Gaussian pixel noise σ 0.05–0.2.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

DATASET_NAME = "digits-rows-8x8"
ROWS = 8
HELD_OUT_SIZE = 5_000
HELD_OUT_SEED = 7
_SPLIT_SEED = 20261202
_HELD_OUT_FRACTION = 0.3


@dataclass(frozen=True)
class RowDigits:
    """Images as (N, 8, 8) in [0, 1] (row tokens of 8 pixels), with their labels."""

    images: torch.Tensor
    labels: torch.Tensor


@dataclass(frozen=True)
class RowDigitsSplits:
    train: RowDigits  # clean bases; training distorts fresh draws of them
    held_out_images: torch.Tensor  # (M, 8, 8), normalised, one fixed draw each
    held_out_labels: torch.Tensor


@cache
def _bases() -> tuple[RowDigits, RowDigits]:
    digits = load_digits()
    images = torch.from_numpy(digits.data.astype(np.float32) / 16.0).reshape(-1, ROWS, ROWS)
    labels = torch.from_numpy(digits.target.astype(np.int64))
    order = torch.from_numpy(np.random.default_rng(_SPLIT_SEED).permutation(len(labels)))
    n_held_out = int(len(order) * _HELD_OUT_FRACTION)
    held, train = order[:n_held_out], order[n_held_out:]
    return RowDigits(images[train], labels[train]), RowDigits(images[held], labels[held])


def distort(
    bases: RowDigits, n: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` normalised images (N, 8, 8) and labels, each a random draw around a random base."""

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator)

    pick = torch.randint(len(bases.labels), (n,), generator=generator)
    x = bases.images[pick].unsqueeze(1)
    angle = uniform(-12, 12) * torch.pi / 180
    scale = uniform(0.9, 1.1)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    shift = 0.6 * 2 / ROWS  # ±0.6 pixel in affine_grid's [-1, 1] coordinates
    tx, ty = uniform(-shift, shift), uniform(-shift, shift)
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="zeros", align_corners=False).squeeze(1)
    x = 2 * uniform(0.7, 1.0).view(-1, 1, 1) * x - 1
    noise = uniform(0.05, 0.2).view(-1, 1, 1) * torch.randn(x.shape, generator=generator)
    return (x + noise).contiguous(), bases.labels[pick]


def held_out_set(
    seed: int = HELD_OUT_SEED, size: int = HELD_OUT_SIZE
) -> tuple[torch.Tensor, torch.Tensor]:
    """A held-out draw: the built-in split is seed 7; other seeds are equally valid alternatives."""
    return distort(_bases()[1], size, torch.Generator().manual_seed(seed))


def load_splits() -> RowDigitsSplits:
    images, labels = held_out_set()
    return RowDigitsSplits(train=_bases()[0], held_out_images=images, held_out_labels=labels)
