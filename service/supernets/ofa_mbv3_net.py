"""Once-for-All's MobileNetV3 supernet (`ofa_mbv3_d234_e346_k357_w1.0` / `w1.2`) as hwnas modules.

Architecture as OFA defines it: a 3×3 stride-2 stem (h-swish), one fixed expand-1 block, five
stages of up to four elastic blocks (strides 2, 2, 2, 1, 2; ReLU in the first two stages, h-swish
after; squeeze-excite in stages 2, 4 and 5), a 1×1 final expand layer, global pooling, a 1×1
feature-mix layer without BN and a linear classifier. Channel counts are OFA's base widths times
the width multiplier, rounded by `make_divisible`.

State-dict keys are those of OFA's released MobileNetV3 checkpoints, whose blocks hold their
layer under `mobile_inverted_conv` (OFA's current code renames it `conv` and translates on load;
`normalise_ofa_state_dict` accepts both).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TypeVar

import torch
from torch import nn

from service.supernets.ofa_layers import (
    ConvLayer,
    DynamicMBConv,
    LinearLayer,
    StaticMBConv,
    make_divisible,
    middle_channels,
)

_M = TypeVar("_M", bound=nn.Module)
BASE_WIDTHS = (16, 16, 24, 40, 80, 112, 160, 960, 1280)
STAGE_STRIDES = (2, 2, 2, 1, 2)
STAGE_HSWISH = (False, False, True, True, True)
STAGE_SE = (False, True, False, True, True)


@dataclass(frozen=True)
class BlockShape:
    """One inverted-residual block of a sub-network, at the input size it runs on."""

    index: int  # position in OFA's `blocks` list (0 is the fixed first block)
    in_c: int
    out_c: int
    mid: int
    kernel: int
    stride: int
    se: bool
    hswish: bool
    in_size: int
    expand: int = 1

    @property
    def out_size(self) -> int:
        return (self.in_size - 1) // self.stride + 1

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_c == self.out_c


@dataclass(frozen=True)
class MBv3Arch:
    width_mult: float = 1.0
    n_classes: int = 1000
    kernels: tuple[int, ...] = (3, 5, 7)
    expands: tuple[int, ...] = (3, 4, 6)
    depths: tuple[int, ...] = (2, 3, 4)

    @cached_property
    def widths(self) -> tuple[int, ...]:
        return tuple(make_divisible(w * self.width_mult) for w in BASE_WIDTHS)

    @property
    def stem_width(self) -> int:
        return self.widths[0]

    @property
    def stage_widths(self) -> tuple[int, ...]:
        return self.widths[2:7]

    @property
    def final_expand_width(self) -> int:
        return self.widths[7]

    @property
    def last_channel(self) -> int:
        return self.widths[8]

    @property
    def max_depth(self) -> int:
        return max(self.depths)

    def stage_input(self, stage: int) -> int:
        return self.widths[1] if stage == 0 else self.stage_widths[stage - 1]

    def blocks(
        self, resolution: int, depths: Sequence[int], kernels: Sequence[int], expands: Sequence[int]
    ) -> list[BlockShape]:
        """The blocks a sub-network runs; `kernels`/`expands` are indexed by OFA block (20)."""
        size = (resolution - 1) // 2 + 1
        first = BlockShape(
            0, self.stem_width, self.widths[1], self.stem_width, 3, 1, False, False, size
        )
        # the fixed first block: expand ratio 1, 3×3, no SE, ReLU
        out = [first]
        for s, depth in enumerate(depths):
            in_c = self.stage_input(s)
            for b in range(depth):
                i = s * self.max_depth + b
                stride = STAGE_STRIDES[s] if b == 0 else 1
                block = BlockShape(
                    i + 1,
                    in_c,
                    self.stage_widths[s],
                    middle_channels(in_c, expands[i]),
                    kernels[i],
                    stride,
                    STAGE_SE[s],
                    STAGE_HSWISH[s],
                    size,
                    expands[i],
                )
                out.append(block)
                in_c, size = self.stage_widths[s], block.out_size
        return out


class OFAResidualBlock(nn.Module):
    """OFA's MobileInvertedResidualBlock; the identity shortcut has no parameters."""

    def __init__(self, layer: nn.Module, residual: bool) -> None:
        super().__init__()
        self.mobile_inverted_conv = layer
        self.residual = residual


class StaticMobileNetV3(nn.Module):
    """A standalone sub-network (OFA's `MobileNetV3`), its blocks under `blocks.N.conv`."""

    def __init__(
        self,
        first_conv: ConvLayer,
        blocks: Sequence[tuple[StaticMBConv, bool]],
        final_expand_layer: ConvLayer,
        feature_mix_layer: ConvLayer,
        classifier: LinearLayer,
    ) -> None:
        super().__init__()
        self.first_conv = first_conv
        self.blocks = nn.ModuleList(_StaticBlock(b, r) for b, r in blocks)
        self.final_expand_layer = final_expand_layer
        self.feature_mix_layer = feature_mix_layer
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_conv(x)
        for block in self.blocks:
            x = block(x)
        x = self.final_expand_layer(x).mean((2, 3), keepdim=True)
        x = self.feature_mix_layer(x)
        return self.classifier(torch.flatten(x, 1))


class _StaticBlock(nn.Module):
    def __init__(self, layer: StaticMBConv, residual: bool) -> None:
        super().__init__()
        self.conv = layer
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y + x if self.residual else y


class OFAMobileNetV3(nn.Module):
    """The supernet: `forward(x, blocks)` runs a sub-network, `build_static(blocks)` copies one."""

    def __init__(self, arch: MBv3Arch) -> None:
        super().__init__()
        self.arch = arch
        w = arch.widths
        self.first_conv = ConvLayer(3, w[0], 3, 2, use_bn=True)
        first = StaticMBConv(w[0], w[1], w[0], 3, 1, hswish=False, se=False)
        blocks = [OFAResidualBlock(first, w[0] == w[1])]
        for s, out_c in enumerate(arch.stage_widths):
            in_c = arch.stage_input(s)
            for b in range(arch.max_depth):
                stride = STAGE_STRIDES[s] if b == 0 else 1
                layer = DynamicMBConv(
                    in_c, out_c, stride, STAGE_HSWISH[s], STAGE_SE[s], arch.kernels, arch.expands
                )
                blocks.append(OFAResidualBlock(layer, stride == 1 and in_c == out_c))
                in_c = out_c
        self.blocks = nn.ModuleList(blocks)
        self.final_expand_layer = ConvLayer(w[6], w[7], 1, 1, use_bn=True)
        self.feature_mix_layer = ConvLayer(w[7], w[8], 1, 1, use_bn=False)
        self.classifier = LinearLayer(w[8], arch.n_classes)

    def _layer(self, index: int) -> nn.Module:
        block = self.blocks[index]
        assert isinstance(block, OFAResidualBlock)
        return block.mobile_inverted_conv

    def forward(self, x: torch.Tensor, shapes: Sequence[BlockShape]) -> torch.Tensor:
        x = self.first_conv(x)
        for shape in shapes:
            layer = self._layer(shape.index)
            if isinstance(layer, DynamicMBConv):
                y = layer(x, shape.kernel, shape.expand)
            else:
                y = layer(x)
            x = y + x if shape.residual else y
        x = self.final_expand_layer(x).mean((2, 3), keepdim=True)
        x = self.feature_mix_layer(x)
        return self.classifier(torch.flatten(x, 1))

    @torch.no_grad()
    def build_static(self, shapes: Sequence[BlockShape]) -> StaticMobileNetV3:
        blocks: list[tuple[StaticMBConv, bool]] = []
        for shape in shapes:
            layer = self._layer(shape.index)
            if isinstance(layer, DynamicMBConv):
                blocks.append((layer.build_static(shape.kernel, shape.expand), shape.residual))
            else:
                assert isinstance(layer, StaticMBConv)
                blocks.append((_copy_module(layer), shape.residual))
        return StaticMobileNetV3(
            _copy_module(self.first_conv),
            blocks,
            _copy_module(self.final_expand_layer),
            _copy_module(self.feature_mix_layer),
            _copy_module(self.classifier),
        ).eval()


def _copy_module(module: _M) -> _M:
    return copy.deepcopy(module).requires_grad_(True)


def normalise_ofa_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys as the released checkpoints spell them: accepts OFA's newer `.conv.` block naming and
    a `module.` (DataParallel) prefix; adds a zero `num_batches_tracked` where a BN lacks it."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = key.removeprefix("module.")
        parts = name.split(".")
        if len(parts) > 2 and parts[0] == "blocks" and parts[2] == "conv":
            parts[2] = "mobile_inverted_conv"
        out[".".join(parts)] = value
    for key in list(out):
        if key.endswith(".running_var"):
            tracked = key.removesuffix("running_var") + "num_batches_tracked"
            out.setdefault(tracked, torch.tensor(0, dtype=torch.long))
    return out
