"""Test inputs for the OFA families: random-weight checkpoints under the key names and shapes of
OFA's released ones (tests/data/*_state_dict.txt), and small generated image folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

DATA = Path(__file__).parent / "data"
LAYOUTS = {
    "ofa-mbv3-w1.0": DATA / "ofa_mbv3_w1.0_state_dict.txt",
    "ofa-mbv3-w1.2": DATA / "ofa_mbv3_w1.2_state_dict.txt",
    "ofa-resnet50": DATA / "ofa_resnet50_state_dict.txt",
}


def ofa_checkpoint(path: Path, family: str = "ofa-mbv3-w1.2", seed: int = 0) -> Path:
    """Random weights saved as OFA saves them (`{"state_dict": …}`), in `family`'s layout."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for line in LAYOUTS[family].read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape_text = line.split()
            shape = () if shape_text == "-" else tuple(int(d) for d in shape_text.split("x"))
            if key.endswith("num_batches_tracked"):
                state[key] = torch.tensor(0)
            elif key.endswith(("running_var", "bn.weight")):
                state[key] = torch.rand(shape, generator=generator) + 0.5
            else:
                state[key] = torch.randn(shape, generator=generator) * 0.1
    torch.save({"state_dict": state}, path)
    return path


def image_folder(root: Path, per_class: int = 3) -> Path:
    """Two ImageNet-named classes (labelled 0 and 1) of small JPEGs of assorted sizes."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(("n01440764", "n01443537")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (40 + 7 * i, 48, 3), dtype=np.uint8)
            pixels[..., c] = 255
            Image.fromarray(pixels).save(root / name / f"{i}.JPEG")
    return root
