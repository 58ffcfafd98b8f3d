"""The image-folder reader: layout, OFA's evaluation transform, splits, errors, and accuracy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from service.supernets.image_folder import (
    MEAN,
    STD,
    ImageFolderError,
    load_image,
    read_listing,
    scan_folder,
    separate_splits,
    split_source,
)
from service.supernets.ofa_mbv3 import OFAMobileNetV3Supernet, set_running_statistics


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_folder(root: Path, per_class: int = 3) -> Path:
    """Three classes of random images of assorted sizes, as .jpg, .png and .JPEG."""
    rng = np.random.default_rng(0)
    for name, suffix in (("cat", ".jpg"), ("dog", ".png"), ("eel", ".JPEG")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            size = (int(rng.integers(40, 90)), int(rng.integers(40, 90)))
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}{suffix}")
    (root / "cat" / "notes.txt").write_text("not an image")
    return root


def test_folder_classes_are_sorted_and_labelled_like_imagefolder(tmp_path: Path) -> None:
    classes, samples = scan_folder(make_folder(tmp_path / "data"))
    assert classes == ["cat", "dog", "eel"]
    assert len(samples) == 9
    assert [s.label for s in samples] == [0] * 3 + [1] * 3 + [2] * 3
    assert all(s.path.suffix != ".txt" for s in samples)


def test_uniform_image_is_normalised_with_imagenet_statistics(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    Image.new("RGB", (50, 30), (128, 64, 200)).save(path)
    image = load_image(path, 32)
    assert image.shape == (3, 32, 32)
    for channel, value in enumerate((128, 64, 200)):
        expected = (value / 255 - MEAN[channel]) / STD[channel]
        torch.testing.assert_close(
            image[channel], torch.full((32, 32), expected), atol=1e-5, rtol=0
        )


def test_shorter_side_resize_then_centre_crop(tmp_path: Path) -> None:
    """200×100, left half red, right half blue: resized to 148×74 (ceil(64 / 0.875) = 74) and
    cropped at columns 42..105, so the colour boundary (column 74) lands at crop column 32."""
    pixels = np.zeros((100, 200, 3), dtype=np.uint8)
    pixels[:, :100, 0] = 255
    pixels[:, 100:, 2] = 255
    path = tmp_path / "halves.png"
    Image.fromarray(pixels).save(path)
    image = load_image(path, 64)
    red = image[0] * STD[0] + MEAN[0]
    assert torch.all(red[:, :31] > 0.99) and torch.all(red[:, 33:] < 0.01)


def test_missing_folder_empty_class_and_no_classes_are_named(tmp_path: Path) -> None:
    with pytest.raises(ImageFolderError, match="does not exist"):
        scan_folder(tmp_path / "nowhere")
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "flat" / "a.jpg")
    with pytest.raises(ImageFolderError, match="no class sub-folders"):
        scan_folder(tmp_path / "flat")
    root = make_folder(tmp_path / "data")
    (root / "fox").mkdir()
    (root / "fox" / "readme.md").write_text("no images here")
    with pytest.raises(ImageFolderError, match=r"class 'fox'.*has no images"):
        scan_folder(root)


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "data")
    broken = root / "dog" / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    with pytest.raises(ImageFolderError, match=r"broken\.png cannot be read"):
        split_source(root, calibration_images=2)
    with pytest.raises(ImageFolderError, match=r"broken\.png cannot be read"):
        separate_splits(root, root, calibration_images=2)
    # unverified, the file fails when its images are first prepared
    splits = split_source(root, calibration_images=8, seed=0, verify=False)
    with pytest.raises(ImageFolderError, match=r"broken\.png cannot be read"):
        splits.calibration.images(32)
        splits.evaluation.images(32)


def test_listing_file(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "data")
    listing = tmp_path / "val.txt"
    listing.write_text(f"# path label\ndata/cat/0.jpg 4\n{root / 'dog' / '1.png'},7\n\n")
    samples = read_listing(listing)
    assert [(s.path.name, s.label) for s in samples] == [("0.jpg", 4), ("1.png", 7)]
    listing.write_text("data/cat/0.jpg\n")
    with pytest.raises(ImageFolderError, match="line 1: expected `path label`"):
        read_listing(listing)
    listing.write_text("data/cat/missing.jpg 1\n")
    with pytest.raises(ImageFolderError, match=r"line 1: image .*missing\.jpg does not exist"):
        read_listing(listing)


def test_splits_are_disjoint_seeded_and_cached_per_resolution(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "data", per_class=4)
    splits = split_source(root, calibration_images=5, seed=1)
    again = split_source(root, calibration_images=5, seed=1)
    cal = {s.path for s in splits.calibration.samples}
    ev = {s.path for s in splits.evaluation.samples}
    assert len(cal) == 5 and len(ev) == 7 and not cal & ev
    assert cal == {s.path for s in again.calibration.samples}
    first = splits.evaluation.images(32)
    assert first.shape == (7, 3, 32, 32) and splits.evaluation.images(32) is first
    assert splits.evaluation.images(48).shape == (7, 3, 48, 48)
    assert splits.evaluation.labels.tolist() == [s.label for s in splits.evaluation.samples]


def test_separate_calibration_and_evaluation_sources(tmp_path: Path) -> None:
    train, val = make_folder(tmp_path / "train", 4), make_folder(tmp_path / "val", 2)
    splits = separate_splits(train, val, calibration_images=5)
    assert len(splits.calibration) == 5 and len(splits.evaluation) == 6
    (val / "fox").mkdir()
    Image.new("RGB", (8, 8)).save(val / "fox" / "a.png")
    with pytest.raises(ImageFolderError, match="different classes"):
        separate_splits(train, val)


def test_accuracy_and_recalibration_on_an_image_folder(tmp_path: Path) -> None:
    splits = split_source(make_folder(tmp_path / "data", per_class=3), calibration_images=4)
    supernet = OFAMobileNetV3Supernet.random("ofa-mbv3-w1.0", data=splits)
    assert supernet.dataset == "data"
    config = dict(supernet.space.smallest(), resolution=128)
    plain = supernet.build_subnet(config, recalibrate=False)
    recalibrated = supernet.build_subnet(config)
    set_running_statistics(plain, [splits.calibration.images(128)])
    for a, b in zip(plain.state_dict().values(), recalibrated.state_dict().values(), strict=True):
        if a.is_floating_point():
            torch.testing.assert_close(a, b)
    again = supernet.build_subnet(config)  # the cached recalibration, as a fresh copy
    assert again is not recalibrated
    assert torch.equal(again.first_conv.bn.running_mean, recalibrated.first_conv.bn.running_mean)
    accuracies = supernet.evaluate_accuracy([config, dict(config, resolution=144)])
    assert all(0.0 <= a <= 100.0 for a in accuracies)
