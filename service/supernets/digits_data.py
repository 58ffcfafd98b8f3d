"""The built-in supernet's data: digits, handwritten and typeset, synthesised into hard 32×32 crops.

Nothing is downloaded. The bases are scikit-learn's 1,797 handwritten 8×8 digits (upsampled) and
the ten digits rendered in 22 fonts that ship with matplotlib (DejaVu, STIX, Computer Modern).
Each image is a base digit between fragments of two neighbouring digits (as in a crop from a line
of text), with a random stroke weight, affine warp, contrast, blur and pixel noise.

Why synthesised and not a fixed data set: held-out accuracy must rank sub-networks. With 539
held-out handwritten digits, two equally valid held-out sets ranked 100 sub-networks at Kendall
τ = 0.45: the sampling noise of 539 images was as large as the differences between sub-networks.
A generator gives a held-out split of any size (10,000 images, drawn once with a fixed seed) and
fresh training images every epoch. The handwritten bases are split 70/30 between training and
held-out; the typeset bases appear in both (what is held out is the draw).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from sklearn.datasets import load_digits

IMAGE_SIZE = 32
NUM_CLASSES = 10
DATASET_NAME = "digits-synth-32"
HELD_OUT_SIZE = 10_000
HELD_OUT_SEED = 7
_SPLIT_SEED = 20261121
_HELD_OUT_FRACTION = 0.3
_TYPESET_SHARE = 0.5
_GLYPH_HEIGHT = 22
FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono-Oblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf",
    "cmr10.ttf",
    "cmb10.ttf",
    "cmss10.ttf",
    "cmtt10.ttf",
    "cmti10.ttf",
    "cmmi10.ttf",
)


@dataclass(frozen=True)
class Bases:
    """Clean base digits, (N, 1, 32, 32) in [0, 1], with their labels."""

    images: torch.Tensor
    labels: torch.Tensor


@dataclass(frozen=True)
class DigitsSplits:
    train: Bases
    held_out_images: torch.Tensor  # (M, 1, 32, 32), normalised, one fixed draw each
    held_out_labels: torch.Tensor


def _glyph(font: ImageFont.FreeTypeFont, digit: str) -> np.ndarray:
    canvas = Image.new("L", (96, 96), 0)
    ImageDraw.Draw(canvas).text((48, 48), digit, font=font, fill=255, anchor="mm")
    pixels = np.asarray(canvas)
    rows, cols = np.nonzero(pixels)
    pixels = pixels[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    height, width = pixels.shape
    scale = _GLYPH_HEIGHT / max(height, width)
    glyph = Image.fromarray(pixels).resize(
        (max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.LANCZOS
    )
    placed = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 0)
    placed.paste(glyph, ((IMAGE_SIZE - glyph.width) // 2, (IMAGE_SIZE - glyph.height) // 2))
    return np.asarray(placed, dtype=np.float32) / 255.0


@cache
def typeset_bases() -> Bases:
    """The ten digits in each of the 22 fonts matplotlib ships."""
    font_dir = matplotlib.get_data_path() + "/fonts/ttf/"
    images, labels = [], []
    for name in FONTS:
        font = ImageFont.truetype(font_dir + name, 64)
        for digit in range(10):
            images.append(_glyph(font, str(digit)))
            labels.append(digit)
    return Bases(
        torch.from_numpy(np.stack(images)).unsqueeze(1), torch.tensor(labels, dtype=torch.int64)
    )


def _handwritten_split() -> tuple[Bases, Bases]:
    digits = load_digits()
    x = torch.from_numpy(digits.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
    labels = torch.from_numpy(digits.target.astype(np.int64))
    order = torch.from_numpy(np.random.default_rng(_SPLIT_SEED).permutation(len(labels)))
    n_held_out = int(len(order) * _HELD_OUT_FRACTION)
    held, train = order[:n_held_out], order[n_held_out:]
    return Bases(x[train], labels[train]), Bases(x[held], labels[held])


def _choose(bases: Bases, n: int, generator: torch.Generator) -> torch.Tensor:
    """Indices into `bases` (handwritten first, typeset after) with the typeset share."""
    n_typeset = len(typeset_bases().labels)
    n_handwritten = len(bases.labels) - n_typeset
    typeset = torch.rand(n, generator=generator) < _TYPESET_SHARE
    handwritten_pick = torch.randint(n_handwritten, (n,), generator=generator)
    typeset_pick = n_handwritten + torch.randint(n_typeset, (n,), generator=generator)
    return torch.where(typeset, typeset_pick, handwritten_pick)


def _with_typeset(handwritten: Bases) -> Bases:
    typeset = typeset_bases()
    return Bases(
        torch.cat([handwritten.images, typeset.images]),
        torch.cat([handwritten.labels, typeset.labels]),
    )


def synthesise(
    bases: Bases, n: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` normalised images and labels, each a fresh random draw around a random base digit."""

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator)

    centre = _choose(bases, n, generator)
    left, right = _choose(bases, n, generator), _choose(bases, n, generator)
    x = bases.images[centre]
    weight = torch.rand(n, generator=generator)  # thin, as drawn, or bold strokes
    thick = F.max_pool2d(x, 3, stride=1, padding=1)
    thin = -F.max_pool2d(-x, 3, stride=1, padding=1)
    x = torch.where((weight < 0.25).view(-1, 1, 1, 1), thin, x)
    x = torch.where((weight > 0.75).view(-1, 1, 1, 1), thick, x)
    gap = uniform(20, 28).round().long().view(-1, 1)
    columns = torch.arange(IMAGE_SIZE).view(1, -1)
    neighbours = torch.zeros_like(x)
    for side, source_columns in ((right, columns - gap), (left, columns + gap)):
        inside = (source_columns >= 0) & (source_columns < IMAGE_SIZE)
        index = source_columns.clamp(0, IMAGE_SIZE - 1).view(n, 1, 1, IMAGE_SIZE)
        moved = torch.gather(bases.images[side], 3, index.expand(n, 1, IMAGE_SIZE, IMAGE_SIZE))
        neighbours += moved * inside.view(n, 1, 1, IMAGE_SIZE)
    x = torch.clamp(x + neighbours, 0, 1)

    angle = uniform(-20, 20) * torch.pi / 180
    scale = uniform(0.8, 1.2)
    shear = uniform(-0.3, 0.3)
    tx, ty = uniform(-0.12, 0.12), uniform(-0.12, 0.12)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin + shear, tx], 1), torch.stack([sin, cos, ty], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)
    blurred = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    x = torch.where((uniform(0, 1) < 0.3).view(-1, 1, 1, 1), blurred, x)
    contrast = uniform(0.5, 1.0).view(-1, 1, 1, 1)
    background = uniform(-1.0, -0.3).view(-1, 1, 1, 1)
    x = background + 2 * contrast * x
    noise = uniform(0.1, 0.45).view(-1, 1, 1, 1) * torch.randn(x.shape, generator=generator)
    return (x + noise).contiguous(), bases.labels[centre]


@cache
def _bases() -> tuple[Bases, Bases]:
    train, held_out = _handwritten_split()
    return _with_typeset(train), _with_typeset(held_out)


def held_out_set(
    seed: int = HELD_OUT_SEED, size: int = HELD_OUT_SIZE
) -> tuple[torch.Tensor, torch.Tensor]:
    """A held-out draw: the built-in split is seed 7; other seeds are equally valid alternatives."""
    return synthesise(_bases()[1], size, torch.Generator().manual_seed(seed))


def load_splits() -> DigitsSplits:
    images, labels = held_out_set()
    return DigitsSplits(train=_bases()[0], held_out_images=images, held_out_labels=labels)
