"""Once-for-All's elastic ResNet50-D (`ofa_supernet_resnet50`) as hwnas modules.

As OFA's `OFAResNets(depth_list=[0, 1, 2], expand_ratio_list=[0.2, 0.25, 0.35],
width_mult_list=[0.65, 0.8, 1.0])`: an input stem of three 3×3 convolutions (stride 2, then a
residual one that sub-networks may skip, then one to the stem width), a 3×3 stride-2 max pool,
four stages of bottleneck blocks (2, 2, 4, 2 blocks plus the stage's extra depth 0–2; strides
1, 2, 2, 2; where the shape changes the shortcut is an average pool and a 1×1 convolution), global
pooling and a linear classifier. Parameters are held in OFA's dynamic-layer layout
(`conv.conv.weight`, `bn.bn.*`, `classifier.linear.linear.*`); every elastic dimension is a
channel prefix, so a sub-network takes leading slices as OFA's `get_active_subnet`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from service.supernets.ofa_layers import Slot, batch_norm, conv, make_divisible, sliced_batch_norm

BASE_DEPTHS = (2, 2, 4, 2)
STAGE_WIDTHS = (256, 512, 1024, 2048)
STRIDES = (1, 2, 2, 2)
WIDTH_MULTS = (0.65, 0.8, 1.0)
EXPANDS = (0.2, 0.25, 0.35)
DEPTHS = (0, 1, 2)
N_CLASSES = 1000


def widths(base: int) -> list[int]:
    return [make_divisible(base * w) for w in WIDTH_MULTS]


def stem_widths() -> tuple[list[int], list[int]]:
    """(widths of stem layers 0 and 1, widths of stem layer 2) per width index."""
    out = widths(64)
    return [make_divisible(c // 2) for c in out], out


def block_offsets() -> list[int]:
    """Index in OFA's `blocks` of each stage's first block."""
    offsets, total = [], 0
    for base in BASE_DEPTHS:
        offsets.append(total)
        total += base + max(DEPTHS)
    return offsets


@dataclass(frozen=True)
class Bottleneck:
    index: int  # position in OFA's `blocks`
    in_c: int
    mid: int
    out_c: int
    stride: int
    in_size: int

    @property
    def out_size(self) -> int:
        return (self.in_size - 1) // self.stride + 1

    @property
    def shortcut_conv(self) -> bool:
        return self.stride != 1 or self.in_c != self.out_c


@dataclass(frozen=True)
class ResNetPlan:
    resolution: int
    skip_stem: bool
    stem0: int  # width of stem layers 0 and 1
    stem2: int
    blocks: tuple[Bottleneck, ...]


def _conv_slot(in_c: int, out_c: int, kernel: int = 1, stride: int = 1) -> Slot:
    """OFA's dynamic conv + BN pair: `conv.conv.weight`, `bn.bn.*`."""
    return Slot(conv=Slot(conv=conv(in_c, out_c, kernel, stride)), bn=Slot(bn=batch_norm(out_c)))


def _conv_bn(
    module: nn.Module, name: str, x: torch.Tensor, out_c: int, stride: int
) -> torch.Tensor:
    """conv → BN of the dynamic slot `name`, on leading channels."""
    weight = module.get_parameter(f"{name}.conv.conv.weight")[:out_c, : x.size(1)]
    bn = module.get_submodule(f"{name}.bn.bn")
    assert isinstance(bn, nn.BatchNorm2d)
    return sliced_batch_norm(F.conv2d(x, weight, None, stride, weight.size(-1) // 2), bn)


class OFAResNet50(nn.Module):
    """The supernet; `forward(x, plan)` runs a sub-network with OFA's slicing."""

    def __init__(self) -> None:
        super().__init__()
        mid_widths, out_widths = stem_widths()
        c0, c2 = max(mid_widths), max(out_widths)
        self.input_stem = nn.ModuleList(
            [_conv_slot(3, c0, 3, 2), Slot(conv=_conv_slot(c0, c0, 3)), _conv_slot(c0, c2, 3)]
        )
        blocks: list[nn.Module] = []
        in_widths = out_widths
        for s, base in enumerate(BASE_DEPTHS):
            stage = widths(STAGE_WIDTHS[s])
            out_c, mid = max(stage), make_divisible(round(max(stage) * max(EXPANDS)))
            for b in range(base + max(DEPTHS)):
                stride = STRIDES[s] if b == 0 else 1
                parts = {
                    "conv1": _conv_slot(max(in_widths), mid),
                    "conv2": _conv_slot(mid, mid, 3, stride),
                    "conv3": _conv_slot(mid, out_c),
                }
                if not (stride == 1 and in_widths == stage):
                    parts["downsample"] = _conv_slot(max(in_widths), out_c)
                blocks.append(Slot(**parts))
                in_widths = stage
        self.blocks = nn.ModuleList(blocks)
        self.classifier = Slot(linear=Slot(linear=nn.Linear(max(in_widths), N_CLASSES)))

    def forward(self, x: torch.Tensor, plan: ResNetPlan) -> torch.Tensor:
        x = F.relu(_stem(self.input_stem[0], x, plan.stem0, 2))
        if not plan.skip_stem:
            x = x + F.relu(_stem(self.input_stem[1].get_submodule("conv"), x, plan.stem0, 1))
        x = F.max_pool2d(F.relu(_stem(self.input_stem[2], x, plan.stem2, 1)), 3, 2, 1)
        for block in plan.blocks:
            x = bottleneck_forward(self.blocks[block.index], x, block)
        weight = self.get_parameter("classifier.linear.linear.weight")[:, : x.size(1)]
        return F.linear(x.mean((2, 3)), weight, self.get_parameter("classifier.linear.linear.bias"))

    @torch.no_grad()
    def build_static(self, plan: ResNetPlan) -> StaticResNet:
        static = StaticResNet(plan)
        own = self.state_dict()
        sliced = {}
        for key, target in static.state_dict().items():
            source = own[supernet_key(key, plan)]
            sliced[key] = (
                source if target.dim() == 0 else source[tuple(slice(0, n) for n in target.shape)]
            )
        static.load_state_dict(sliced, strict=True)
        return static.eval()


def _stem(slot: nn.Module, x: torch.Tensor, out_c: int, stride: int) -> torch.Tensor:
    weight = slot.get_parameter("conv.conv.weight")[:out_c, : x.size(1)]
    bn = slot.get_submodule("bn.bn")
    assert isinstance(bn, nn.BatchNorm2d)
    return sliced_batch_norm(F.conv2d(x, weight, None, stride, 1), bn)


def bottleneck_forward(block: nn.Module, x: torch.Tensor, plan: Bottleneck) -> torch.Tensor:
    if plan.shortcut_conv:
        shortcut = F.avg_pool2d(x, plan.stride, plan.stride, 0, ceil_mode=True)
        shortcut = _conv_bn(block, "downsample", shortcut, plan.out_c, 1)
    else:
        shortcut = x
    y = F.relu(_conv_bn(block, "conv1", x, plan.mid, 1))
    y = F.relu(_conv_bn(block, "conv2", y, plan.mid, plan.stride))
    return F.relu(_conv_bn(block, "conv3", y, plan.out_c, 1) + shortcut)


def supernet_key(static_key: str, plan: ResNetPlan) -> str:
    """The supernet's key for a key of the static sub-network (OFA's static → dynamic names)."""
    parts = static_key.split(".")
    if parts[0] == "input_stem" and plan.skip_stem and parts[1] == "1":
        parts[1] = "2"
    if parts[0] == "blocks":
        parts[1] = str(plan.blocks[int(parts[1])].index)
    name = ".".join(parts)
    if name.endswith("conv.weight"):
        return name.removesuffix("conv.weight") + "conv.conv.weight"
    if name.startswith("classifier.linear."):
        return name.replace("classifier.linear.", "classifier.linear.linear.")
    head, _, tail = name.rpartition(".bn.")
    return f"{head}.bn.bn.{tail}"


class _ConvBN(nn.Module):
    def __init__(self, in_c: int, out_c: int, kernel: int, stride: int, act: bool = True) -> None:
        super().__init__()
        self.conv = conv(in_c, out_c, kernel, stride)
        self.bn = batch_norm(out_c)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        return F.relu(y) if self.act else y


class _StaticBottleneck(nn.Module):
    """OFA's ResNetBottleneckBlock (avgpool_conv shortcut)."""

    def __init__(self, block: Bottleneck) -> None:
        super().__init__()
        self.conv1 = _ConvBN(block.in_c, block.mid, 1, 1)
        self.conv2 = _ConvBN(block.mid, block.mid, 3, block.stride)
        self.conv3 = _ConvBN(block.mid, block.out_c, 1, 1, act=False)
        self.stride = block.stride
        self.downsample = (
            _ConvBN(block.in_c, block.out_c, 1, 1, act=False) if block.shortcut_conv else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.downsample is not None:
            shortcut = self.downsample(F.avg_pool2d(x, self.stride, self.stride, 0, ceil_mode=True))
        return F.relu(self.conv3(self.conv2(self.conv1(x))) + shortcut)


class _Residual(nn.Module):
    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.conv = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


class StaticResNet(nn.Module):
    """A standalone sub-network (OFA's `ResNets`)."""

    def __init__(self, plan: ResNetPlan) -> None:
        super().__init__()
        stem: list[nn.Module] = [_ConvBN(3, plan.stem0, 3, 2)]
        if not plan.skip_stem:
            stem.append(_Residual(_ConvBN(plan.stem0, plan.stem0, 3, 1)))
        stem.append(_ConvBN(plan.stem0, plan.stem2, 3, 1))
        self.input_stem = nn.ModuleList(stem)
        self.blocks = nn.ModuleList(_StaticBottleneck(b) for b in plan.blocks)
        self.classifier = Slot(linear=nn.Linear(plan.blocks[-1].out_c, N_CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.input_stem:
            x = layer(x)
        x = F.max_pool2d(x, 3, 2, 1)
        for block in self.blocks:
            x = block(x)
        return self.classifier.get_submodule("linear")(x.mean((2, 3)))


def plan_blocks(
    resolution: int,
    stage_widths: Sequence[int],
    depths: Sequence[int],
    expands: Sequence[float],
    in_c: int,
) -> tuple[Bottleneck, ...]:
    """The bottlenecks a sub-network runs; `expands` indexed by OFA block (18)."""
    size = (resolution - 1) // 2 + 1  # stem, stride 2
    size = (size - 1) // 2 + 1  # max pool 3×3, stride 2, padding 1
    blocks = []
    for s, (offset, base) in enumerate(zip(block_offsets(), BASE_DEPTHS, strict=True)):
        out_c = stage_widths[s]
        for b in range(base + depths[s]):
            mid = make_divisible(round(out_c * expands[offset + b]))
            block = Bottleneck(offset + b, in_c, mid, out_c, STRIDES[s] if b == 0 else 1, size)
            blocks.append(block)
            in_c, size = out_c, block.out_size
    return tuple(blocks)
