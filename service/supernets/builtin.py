"""The built-in `mbv3-digits` family: the elastic MobileNetV3 trained by `hwnas supernet train`."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from service.supernets.accuracy import top1_accuracy
from service.supernets.checksum import verified_sha256
from service.supernets.digits_data import DATASET_NAME, DigitsSplits, load_splits, synthesise
from service.supernets.elastic_mbv3 import ArchSpec, ElasticMobileNetV3, StaticBlock, Stem
from service.supernets.space import Config

FAMILY = "mbv3-digits"
CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"
DEFAULT_CHECKPOINT = CHECKPOINT_DIR / "mbv3_digits.pt"
_CALIBRATION_IMAGES = 512
_CALIBRATION_SEED = 11
_RECALIBRATED_KEPT = 32  # a validation batch: accuracy first, then ONNX export


@dataclass(frozen=True)
class Op:
    """One op of a sub-network, with the shapes a latency table keys it by (H×W×C)."""

    kind: str  # Conv, expanded_conv, Conv_1, AvgPool2D, Conv_2, Logits
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    mid: int = 0
    kernel: int = 0
    stride: int = 1
    hswish: bool = False

    @property
    def key(self) -> str:
        fmt = "x".join
        shapes = f"input:{fmt(map(str, self.in_shape))}-output:{fmt(map(str, self.out_shape))}"
        if self.kind == "Logits":
            shapes = f"input:{fmt(map(str, self.in_shape))}-output:{self.out_shape[2]}"
        if self.kind != "expanded_conv":
            return f"{self.kind}-{shapes}"
        idskip = int(self.stride == 1 and self.in_shape[2] == self.out_shape[2])
        return (
            f"expanded_conv-{shapes}-expand:{self.mid}-kernel:{self.kernel}-stride:{self.stride}"
            f"-idskip:{idskip}-se:0-hs:{int(self.hswish)}"
        )

    @property
    def macs(self) -> int:
        (h, w, c), (ho, wo, co) = self.in_shape, self.out_shape
        if self.kind == "Conv":
            return 9 * c * co * ho * wo
        if self.kind == "expanded_conv":
            return h * w * c * self.mid + ho * wo * self.mid * (self.kernel**2 + co)
        if self.kind in ("Conv_1", "Conv_2"):
            return h * w * c * co
        if self.kind == "Logits":
            return c * co
        return 0

    @property
    def params(self) -> int:
        c, co = self.in_shape[2], self.out_shape[2]
        if self.kind == "Conv":
            return 9 * c * co + 2 * co
        if self.kind == "expanded_conv":
            return (
                c * self.mid
                + 2 * self.mid
                + self.mid * self.kernel**2
                + 2 * self.mid
                + (self.mid * co + 2 * co)
            )
        if self.kind == "Conv_1":
            return c * co + 2 * co
        if self.kind == "Conv_2":
            return c * co
        if self.kind == "Logits":
            return c * co + co
        return 0


def parse_op_key(key: str) -> Op:
    """Inverse of `Op.key` for this family's keys."""
    kind, *fields = key.split("-")
    values = dict(f.split(":", 1) for f in fields)

    def shape(text: str) -> tuple[int, int, int]:
        parts = [int(p) for p in text.split("x")]
        return (1, 1, parts[0]) if len(parts) == 1 else (parts[0], parts[1], parts[2])

    return Op(
        kind=kind,
        in_shape=shape(values["input"]),
        out_shape=shape(values["output"]),
        mid=int(values.get("expand", 0)),
        kernel=int(values.get("kernel", 0)),
        stride=int(values.get("stride", 1)),
        hswish=values.get("hs") == "1",
    )


class MobileNetV3DigitsSupernet:
    """The `Supernet` protocol over a trained `ElasticMobileNetV3`."""

    family = FAMILY
    dataset = DATASET_NAME

    def __init__(self, model: ElasticMobileNetV3, checkpoint_sha256: str | None = None) -> None:
        self.model = model.eval()
        self.spec = model.spec
        self.space = model.spec.search_space()
        self.checkpoint_sha256 = checkpoint_sha256
        self._recalibrated: dict[str, nn.Module] = {}

    @cached_property
    def splits(self) -> DigitsSplits:
        return load_splits()

    @cached_property
    def calibration_images(self) -> torch.Tensor:
        generator = torch.Generator().manual_seed(_CALIBRATION_SEED)
        return synthesise(self.splits.train, _CALIBRATION_IMAGES, generator)[0]

    def canonical(self, config: Mapping[str, Any]) -> Config:
        return self.space.canonical(config)

    def ops(self, config: Mapping[str, Any]) -> Iterator[Op]:
        config = self.canonical(config)
        spec = self.spec
        size = spec.image_size
        stem_out = math.ceil(size / 2)
        yield Op("Conv", (size, size, spec.in_channels), (stem_out, stem_out, spec.stem_width))
        h, c = stem_out, spec.stem_width
        for s, stage in enumerate(spec.stages):
            for b in range(int(config[f"s{s}.depth"])):
                stride = stage.stride if b == 0 else 1
                ho = math.ceil(h / stride)
                yield Op(
                    "expanded_conv",
                    (h, h, c),
                    (ho, ho, stage.width),
                    mid=c * int(config[f"s{s}.b{b}.expand"]),
                    kernel=int(config[f"s{s}.b{b}.kernel"]),
                    stride=stride,
                    hswish=stage.hswish,
                )
                h, c = ho, stage.width
        yield Op("Conv_1", (h, h, c), (h, h, spec.final_expand_width))
        yield Op("AvgPool2D", (h, h, spec.final_expand_width), (1, 1, spec.final_expand_width))
        yield Op("Conv_2", (1, 1, spec.final_expand_width), (1, 1, spec.feature_mix_width))
        yield Op("Logits", (1, 1, spec.feature_mix_width), (1, 1, spec.num_classes))

    def layer_keys(self, config: Mapping[str, Any]) -> list[str]:
        return [op.key for op in self.ops(config)]

    def all_layer_keys(self) -> list[str]:
        """Every distinct op key any sub-network of the space runs (what a LUT must cover)."""
        keys: dict[str, None] = {}
        for kernel in self.spec.kernels:
            for expand in self.spec.expands:
                config = {
                    g.name: kernel
                    if g.name.endswith(".kernel")
                    else expand
                    if g.name.endswith(".expand")
                    else max(g.choices)
                    for g in self.space.genes
                }
                keys.update(dict.fromkeys(self.layer_keys(config)))
        return list(keys)

    def macs(self, config: Mapping[str, Any]) -> int:
        return sum(op.macs for op in self.ops(config))

    def params(self, config: Mapping[str, Any]) -> int:
        return sum(op.params for op in self.ops(config))

    def example_input(self, batch: int, config: Mapping[str, Any] | None = None) -> torch.Tensor:
        size = self.spec.image_size
        generator = torch.Generator().manual_seed(0)
        return torch.randn(batch, self.spec.in_channels, size, size, generator=generator)

    def build_subnet(self, config: Mapping[str, Any], recalibrate: bool = True) -> nn.Module:
        """A standalone copy of the sub-network; batch-norm statistics recalibrated on its own
        activations (shared statistics belong to no single sub-network)."""
        config = self.canonical(config)
        if not recalibrate:
            return self.model.build_static(config).eval()
        # Validation builds each network twice (accuracy, then ONNX export): keep the last
        # batch's recalibrated ones and hand out copies.
        digest = self.space.config_hash(config)
        if digest not in self._recalibrated:
            subnet = self.model.build_static(config)
            recalibrate_batch_norm(subnet, self.calibration_images)
            self._recalibrated[digest] = subnet.eval()
            while len(self._recalibrated) > _RECALIBRATED_KEPT:
                self._recalibrated.pop(next(iter(self._recalibrated)))
        return copy.deepcopy(self._recalibrated[digest])

    @cached_property
    def _held_out_channels_last(self) -> torch.Tensor:
        return self.splits.held_out_images.contiguous(memory_format=torch.channels_last)

    def evaluate_accuracy(self, configs: Sequence[Mapping[str, Any]]) -> list[float]:
        return [
            top1_accuracy(
                self.build_subnet(config).to(memory_format=torch.channels_last),  # type: ignore[call-overload]
                self._held_out_channels_last,
                self.splits.held_out_labels,
            )
            for config in configs
        ]

    def op_module(self, key: str) -> tuple[nn.Module, tuple[int, ...]]:
        """A module running just the op a latency-table key names, and its input shape (C, H, W)."""
        op = parse_op_key(key)
        (h, w, c), (_, _, co) = op.in_shape, op.out_shape
        module: nn.Module
        if op.kind == "Conv":
            stem_spec = ArchSpec(in_channels=c, stem_width=co)
            module = Stem(stem_spec)
        elif op.kind == "expanded_conv":
            module = StaticBlock(c, co, op.mid, op.kernel, op.stride, op.hswish)
        elif op.kind == "Conv_1":
            module = nn.Sequential(
                nn.Conv2d(c, co, 1, bias=False), nn.BatchNorm2d(co), nn.Hardswish()
            )
        elif op.kind == "AvgPool2D":
            module = nn.AdaptiveAvgPool2d(1)
        elif op.kind == "Conv_2":
            module = nn.Sequential(nn.Conv2d(c, co, 1, bias=False), nn.Hardswish())
        elif op.kind == "Logits":
            module = nn.Sequential(nn.Flatten(), nn.Linear(c, co))
        else:
            raise ValueError(f"unknown op kind {op.kind!r} in key {key!r}")
        return module.eval(), (c, h, w)


def recalibrate_batch_norm(module: nn.Module, images: torch.Tensor, batch: int = 256) -> None:
    """Recompute batch-norm running statistics as a plain average over `images`."""
    # channels-last runs this network's depthwise convolutions ~3x faster on CPU
    module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    images = images.contiguous(memory_format=torch.channels_last)
    for layer in module.modules():
        if isinstance(layer, nn.BatchNorm2d):
            layer.reset_running_stats()
            layer.momentum = None  # cumulative average over the calibration batches
    module.train()
    with torch.no_grad():
        for i in range(0, len(images), batch):
            module(images[i : i + batch])
    module.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    module.eval()


def load_mbv3_digits(checkpoint: str | None = None) -> MobileNetV3DigitsSupernet:
    """Load weights, verifying the sha256 recorded in the manifest beside the checkpoint."""
    path = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
    digest = verified_sha256(path, "hwnas supernet train")
    model = ElasticMobileNetV3(ArchSpec())
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return MobileNetV3DigitsSupernet(model, checkpoint_sha256=digest)
