"""What a supernet is registered with beside its checkpoint: its image data and resolutions.

The image families (`ofa-mbv3-*`, `ofa-resnet50`) take an image folder (or a listing file) with a
calibration split for batch-norm recalibration and an evaluation split; `resolutions` restricts the
resolution gene (e.g. to the one a device's latency table was measured at). Paths here are trusted:
the service resolves a client's names inside its image directory first.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.supernets.image_folder import ImageSplits

# OFA recalibrates batch norm on 2,000 training images. (Stated here too so that reading the
# options, e.g. in the HTTP client, never imports torch through the image reader.)
OFA_CALIBRATION_IMAGES = 2000


class UnsupportedResolutionError(ValueError):
    """Resolutions a family was not trained for."""


@dataclass(frozen=True)
class DataOptions:
    """Frozen and hashable, so a loaded supernet can be cached per (family, checkpoint, options)."""

    image_folder: str | None = None
    calibration_folder: str | None = None
    calibration_images: int = OFA_CALIBRATION_IMAGES
    evaluation_images: int | None = None
    seed: int = 0
    resolutions: tuple[int, ...] | None = None

    def splits(self) -> ImageSplits | None:
        """The calibration and evaluation splits (every image opened once), or None."""
        if self.image_folder is None:
            return None
        from service.supernets.image_folder import ImageSet, separate_splits, split_source

        if self.calibration_folder is not None:
            splits = separate_splits(
                self.calibration_folder,
                self.image_folder,
                calibration_images=self.calibration_images,
                seed=self.seed,
            )
        else:
            splits = split_source(
                self.image_folder, calibration_images=self.calibration_images, seed=self.seed
            )
        evaluation = splits.evaluation.samples
        if self.evaluation_images is not None and self.evaluation_images < len(evaluation):
            drawn = random.Random(self.seed).sample(range(len(evaluation)), self.evaluation_images)
            splits.evaluation = ImageSet([evaluation[i] for i in sorted(drawn)])
        return splits

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["resolutions"] = list(self.resolutions) if self.resolutions is not None else None
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> DataOptions | None:
        if not data:
            return None
        resolutions = data.get("resolutions")
        return cls(
            image_folder=data.get("image_folder"),
            calibration_folder=data.get("calibration_folder"),
            calibration_images=int(data.get("calibration_images", OFA_CALIBRATION_IMAGES)),
            evaluation_images=data.get("evaluation_images"),
            seed=int(data.get("seed", 0)),
            resolutions=tuple(resolutions) if resolutions is not None else None,
        )
