"""Image data for the real supernets: an image folder or a listing file, read with PIL and torch.

Sources:
- a folder with one sub-folder per class (`class_name/*.jpg|jpeg|png`, any case); labels are the
  classes' positions in sorted order, as torchvision's `ImageFolder` (and so OFA) numbers them;
- a listing file, one image a line: `path label` (whitespace or a comma between; `label` an
  integer class index; relative paths are read from the listing's folder).

Images are prepared as OFA evaluates: shorter side resized (bilinear) to ceil(size / 0.875),
centre crop to size × size, RGB scaled to [0, 1], normalised with ImageNet's mean and std.
`ImageSplits` holds the calibration split (batch-norm recalibration; OFA uses 2,000 training
images) and the evaluation split; `split_source` draws both from one source, disjoint and seeded.
"""

from __future__ import annotations

import math
import random
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CROP_FRACTION = 0.875
OFA_CALIBRATION_IMAGES = 2000


class ImageFolderError(ValueError):
    """A folder, listing or image that cannot be used, with the path to fix."""


@dataclass(frozen=True)
class ImageSample:
    path: Path
    label: int


def scan_folder(root: str | Path) -> tuple[list[str], list[ImageSample]]:
    """(class names, samples) of a `class_name/image` folder."""
    root = Path(root)
    if not root.is_dir():
        raise ImageFolderError(f"image folder {root} does not exist or is not a folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ImageFolderError(
            f"image folder {root} has no class sub-folders; expected {root}/<class>/<image>.jpg"
        )
    samples: list[ImageSample] = []
    for label, name in enumerate(classes):
        images = sorted(
            p for p in (root / name).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not images:
            raise ImageFolderError(
                f"class {name!r} ({root / name}) has no images (.jpg, .jpeg or .png)"
            )
        samples.extend(ImageSample(p, label) for p in images)
    return classes, samples


def read_listing(listing: str | Path) -> list[ImageSample]:
    """Samples of a listing file: one `path label` a line; blank lines and `#` comments skipped."""
    listing = Path(listing)
    if not listing.is_file():
        raise ImageFolderError(f"image listing {listing} does not exist")
    samples: list[ImageSample] = []
    for number, line in enumerate(listing.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = re.split(r"[,\s]+", text)
        if len(parts) != 2 or not parts[1].isdigit():
            raise ImageFolderError(
                f"{listing}: line {number}: expected `path label` (label an integer), got {text!r}"
            )
        path = Path(parts[0])
        path = path if path.is_absolute() else listing.parent / path
        if not path.is_file():
            raise ImageFolderError(f"{listing}: line {number}: image {path} does not exist")
        samples.append(ImageSample(path, int(parts[1])))
    if not samples:
        raise ImageFolderError(f"image listing {listing} names no images")
    return samples


def verify_images(samples: Sequence[ImageSample]) -> None:
    """Open every image's header (PIL `verify`): raise naming the first unreadable file."""
    for sample in samples:
        try:
            with Image.open(sample.path) as opened:
                opened.verify()
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
            raise ImageFolderError(f"image {sample.path} cannot be read: {error}") from error


def load_image(path: Path, size: int) -> torch.Tensor:
    """One image as OFA evaluates it: (3, size, size), normalised."""
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise ImageFolderError(f"image {path} cannot be read: {error}") from error
    short = math.ceil(size / CROP_FRACTION)
    w, h = image.size
    if w <= h:
        new_w, new_h = short, int(short * h / w)
    else:
        new_w, new_h = int(short * w / h), short
    image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    top = round((new_h - size) / 2.0)
    left = round((new_w - size) / 2.0)
    image = image.crop((left, top, left + size, top + size))
    array = np.asarray(image, dtype=np.float32) / 255.0
    tensor = torch.from_numpy(array.copy()).permute(2, 0, 1)
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)
    return (tensor - mean) / std


@dataclass
class ImageSet:
    """Samples with their images prepared per resolution (the last `cache_size` kept)."""

    samples: list[ImageSample]
    cache_size: int = 1
    _cache: OrderedDict[int, torch.Tensor] = field(default_factory=OrderedDict, repr=False)

    def __post_init__(self) -> None:
        if not self.samples:
            raise ImageFolderError("an image split needs at least one image")

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor([s.label for s in self.samples], dtype=torch.long)

    def images(self, size: int) -> torch.Tensor:
        if size not in self._cache:
            self._cache[size] = torch.stack([load_image(s.path, size) for s in self.samples])
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(size)
        return self._cache[size]


@dataclass
class ImageSplits:
    name: str
    calibration: ImageSet
    evaluation: ImageSet
    classes: list[str] = field(default_factory=list)


def read_source(source: str | Path) -> tuple[list[str], list[ImageSample]]:
    """A folder (`class/image`) or a listing file."""
    path = Path(source)
    if path.is_file():
        samples = read_listing(path)
        return [str(i) for i in sorted({s.label for s in samples})], samples
    return scan_folder(path)


def split_source(
    source: str | Path,
    calibration_images: int = OFA_CALIBRATION_IMAGES,
    seed: int = 0,
    name: str | None = None,
    verify: bool = True,
) -> ImageSplits:
    """Calibration and evaluation splits drawn from one source, disjoint, seeded; with `verify`
    every image is opened once now, so an unreadable file fails here and not mid-search."""
    classes, samples = read_source(source)
    if verify:
        verify_images(samples)
    if len(samples) < 2:
        raise ImageFolderError(f"{source}: needs at least two images to split, has {len(samples)}")
    n = min(calibration_images, len(samples) - 1)
    order = list(range(len(samples)))
    random.Random(seed).shuffle(order)
    calibration = [samples[i] for i in sorted(order[:n])]
    evaluation = [samples[i] for i in sorted(order[n:])]
    return ImageSplits(
        name or Path(source).name, ImageSet(calibration), ImageSet(evaluation), classes
    )


def separate_splits(
    calibration: str | Path,
    evaluation: str | Path,
    calibration_images: int = OFA_CALIBRATION_IMAGES,
    seed: int = 0,
    name: str | None = None,
    verify: bool = True,
) -> ImageSplits:
    """Calibration from one source (e.g. training images; `calibration_images` drawn at random
    as OFA does) and evaluation from another (e.g. the validation set, all of it)."""
    classes, cal_samples = read_source(calibration)
    eval_classes, eval_samples = read_source(evaluation)
    if Path(calibration).is_dir() and Path(evaluation).is_dir() and classes != eval_classes:
        raise ImageFolderError(
            f"{calibration} and {evaluation} have different classes: "
            f"{_difference(classes, eval_classes)}"
        )
    drawn = random.Random(seed).sample(cal_samples, min(calibration_images, len(cal_samples)))
    if verify:
        verify_images([*drawn, *eval_samples])
    return ImageSplits(
        name or Path(evaluation).name, ImageSet(drawn), ImageSet(eval_samples), eval_classes
    )


def _difference(a: Sequence[str], b: Sequence[str]) -> str:
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    return f"only in the first {only_a[:5]}, only in the second {only_b[:5]}"
