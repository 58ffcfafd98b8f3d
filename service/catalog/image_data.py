"""Client-given image folders: names inside the configured image directory, nothing else.

A registration names its image folder (or listing file) relative to `HWNAS_IMAGE_DIR`; the
name is resolved (symlinks followed) and refused when it lands outside, as checkpoints are.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from service.errors import InvalidInputError
from service.supernets.data_options import DataOptions

MAX_IMAGE_SOURCE_NAME = 1024


class InvalidImageDataError(InvalidInputError):
    code = "invalid_image_data"


def resolve_image_source(given: str, image_dir: Path, field: str) -> Path:
    """The folder or listing file `given` names inside `image_dir`; 422 saying why otherwise."""
    where = f"the image directory {str(image_dir)!r} (HWNAS_IMAGE_DIR)"
    if not given.strip() or "\x00" in given or len(given) > MAX_IMAGE_SOURCE_NAME:
        raise InvalidImageDataError(f"data.{field} must be a folder name inside {where}")
    root = image_dir.resolve()
    try:
        path = (root / given).resolve()
    except (OSError, RuntimeError) as exc:
        raise InvalidImageDataError(
            f"data.{field} {given[:200]!r} cannot be resolved: {exc}"
        ) from exc
    if not path.is_relative_to(root) or path == root:
        raise InvalidImageDataError(
            f"data.{field} {given[:200]!r} resolves outside {where}; put the images there "
            "and give the folder's name"
        )
    if not path.exists():
        raise InvalidImageDataError(f"data.{field} {given[:200]!r} is not a folder in {where}")
    return path


def resolved_options(options: DataOptions, image_dir: Path) -> DataOptions:
    """`options` with its client-given names replaced by checked paths inside `image_dir`."""
    folder = options.image_folder
    calibration = options.calibration_folder
    if calibration is not None and folder is None:
        raise InvalidImageDataError("data.calibration_folder needs data.image_folder beside it")
    return replace(
        options,
        image_folder=str(resolve_image_source(folder, image_dir, "image_folder"))
        if folder is not None
        else None,
        calibration_folder=str(resolve_image_source(calibration, image_dir, "calibration_folder"))
        if calibration is not None
        else None,
    )
