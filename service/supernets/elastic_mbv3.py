"""An elastic MobileNetV3-style CNN in the Once-for-All manner.

Elastic depth per stage, kernel size (3/5/7, with OFA's kernel transformation matrices) and expand
ratio per block. One set of weights; `ElasticMobileNetV3.forward(x, config)` runs any sub-network,
and `build_static(config)` copies the active slices into a plain `nn.Sequential`-style module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from service.supernets.space import ActiveWhen, Gene, SearchSpace


@dataclass(frozen=True)
class StageSpec:
    width: int
    stride: int
    hswish: bool


@dataclass(frozen=True)
class ArchSpec:
    in_channels: int = 1
    image_size: int = 32
    stem_width: int = 16
    stages: tuple[StageSpec, ...] = (
        StageSpec(16, 2, False),
        StageSpec(24, 2, False),
        StageSpec(40, 2, True),
        StageSpec(64, 1, True),
    )
    depths: tuple[int, ...] = (1, 2, 3, 4)
    kernels: tuple[int, ...] = (3, 5, 7)
    expands: tuple[int, ...] = (2, 3, 4, 6)
    final_expand_width: int = 192
    feature_mix_width: int = 256
    num_classes: int = 10

    @property
    def max_depth(self) -> int:
        return max(self.depths)

    def search_space(self) -> SearchSpace:
        genes: list[Gene] = []
        for s in range(len(self.stages)):
            genes.append(Gene(f"s{s}.depth", self.depths))
            for b in range(self.max_depth):
                cond = ActiveWhen(f"s{s}.depth", b + 1) if b + 1 > min(self.depths) else None
                genes.append(Gene(f"s{s}.b{b}.kernel", self.kernels, cond))
                genes.append(Gene(f"s{s}.b{b}.expand", self.expands, cond))
        return SearchSpace(tuple(genes))


def _act(hswish: bool) -> nn.Module:
    return nn.Hardswish() if hswish else nn.ReLU()


def _functional_act(x: torch.Tensor, hswish: bool) -> torch.Tensor:
    return F.hardswish(x) if hswish else F.relu(x)


def _sliced_bn(x: torch.Tensor, bn: nn.BatchNorm2d, channels: int) -> torch.Tensor:
    assert bn.running_mean is not None and bn.running_var is not None
    return F.batch_norm(
        x,
        bn.running_mean[:channels],
        bn.running_var[:channels],
        bn.weight[:channels],
        bn.bias[:channels],
        training=bn.training,
        momentum=0.1,
        eps=bn.eps,
    )


class ElasticBlock(nn.Module):
    """Inverted residual block: 1×1 expand → k×k depthwise → 1×1 project, all elastic."""

    def __init__(self, in_c: int, out_c: int, stride: int, hswish: bool, spec: ArchSpec) -> None:
        super().__init__()
        self.in_c, self.out_c, self.stride, self.hswish = in_c, out_c, stride, hswish
        self.max_kernel = max(spec.kernels)
        self.kernels = sorted(spec.kernels, reverse=True)
        max_mid = in_c * max(spec.expands)
        self.expand = nn.Conv2d(in_c, max_mid, 1, bias=False)
        self.expand_bn = nn.BatchNorm2d(max_mid)
        self.depthwise = nn.Conv2d(
            max_mid,
            max_mid,
            self.max_kernel,
            stride,
            self.max_kernel // 2,
            groups=max_mid,
            bias=False,
        )
        self.depthwise_bn = nn.BatchNorm2d(max_mid)
        self.project = nn.Conv2d(max_mid, out_c, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(out_c)
        # OFA's kernel transformation: a smaller kernel is a learned linear map of the centre of
        # the next larger one, initialised to the identity.
        self.kernel_transforms = nn.ParameterDict(
            {
                f"{big}to{small}": nn.Parameter(torch.eye(small * small))
                for big, small in zip(self.kernels[:-1], self.kernels[1:], strict=True)
            }
        )

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_c == self.out_c

    def depthwise_kernel(self, kernel: int, mid: int) -> torch.Tensor:
        weight = self.depthwise.weight[:mid]
        current = self.max_kernel
        for small in self.kernels[1:]:
            if current == kernel:
                break
            start = (current - small) // 2
            centre = weight[:, :, start : start + small, start : start + small]
            flat = (
                centre.reshape(mid, small * small) @ self.kernel_transforms[f"{current}to{small}"]
            )
            weight = flat.reshape(mid, 1, small, small)
            current = small
        return weight

    def forward(self, x: torch.Tensor, kernel: int, expand: int) -> torch.Tensor:
        mid = self.in_c * expand
        out = F.conv2d(x, self.expand.weight[:mid])
        out = _functional_act(_sliced_bn(out, self.expand_bn, mid), self.hswish)
        out = F.conv2d(
            out, self.depthwise_kernel(kernel, mid), None, self.stride, kernel // 2, 1, mid
        )
        out = _functional_act(_sliced_bn(out, self.depthwise_bn, mid), self.hswish)
        out = F.conv2d(out, self.project.weight[:, :mid])
        out = _sliced_bn(out, self.project_bn, self.out_c)
        return out + x if self.residual else out

    def build_static(self, kernel: int, expand: int) -> StaticBlock:
        mid = self.in_c * expand
        block = StaticBlock(self.in_c, self.out_c, mid, kernel, self.stride, self.hswish)
        with torch.no_grad():
            block.expand.weight.copy_(self.expand.weight[:mid])
            block.depthwise.weight.copy_(self.depthwise_kernel(kernel, mid))
            block.project.weight.copy_(self.project.weight[:, :mid])
            _copy_bn(block.expand_bn, self.expand_bn, mid)
            _copy_bn(block.depthwise_bn, self.depthwise_bn, mid)
            _copy_bn(block.project_bn, self.project_bn, self.out_c)
        return block


def _copy_bn(target: nn.BatchNorm2d, source: nn.BatchNorm2d, channels: int) -> None:
    assert source.running_mean is not None and source.running_var is not None
    assert target.running_mean is not None and target.running_var is not None
    target.weight.copy_(source.weight[:channels])
    target.bias.copy_(source.bias[:channels])
    target.running_mean.copy_(source.running_mean[:channels])
    target.running_var.copy_(source.running_var[:channels])


class StaticBlock(nn.Module):
    def __init__(
        self, in_c: int, out_c: int, mid: int, kernel: int, stride: int, hswish: bool
    ) -> None:
        super().__init__()
        self.residual = stride == 1 and in_c == out_c
        self.expand = nn.Conv2d(in_c, mid, 1, bias=False)
        self.expand_bn = nn.BatchNorm2d(mid)
        self.expand_act = _act(hswish)
        self.depthwise = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self.depthwise_bn = nn.BatchNorm2d(mid)
        self.depthwise_act = _act(hswish)
        self.project = nn.Conv2d(mid, out_c, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(out_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand_act(self.expand_bn(self.expand(x)))
        out = self.depthwise_act(self.depthwise_bn(self.depthwise(out)))
        out = self.project_bn(self.project(out))
        return out + x if self.residual else out


class Head(nn.Module):
    """Final 1×1 expand (Conv_1), global average pool, feature mix (Conv_2), classifier (Logits)."""

    def __init__(self, in_c: int, spec: ArchSpec) -> None:
        super().__init__()
        self.final_expand = nn.Conv2d(in_c, spec.final_expand_width, 1, bias=False)
        self.final_expand_bn = nn.BatchNorm2d(spec.final_expand_width)
        self.final_expand_act = nn.Hardswish()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_mix = nn.Conv2d(spec.final_expand_width, spec.feature_mix_width, 1, bias=False)
        self.feature_mix_act = nn.Hardswish()
        self.classifier = nn.Linear(spec.feature_mix_width, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_expand_act(self.final_expand_bn(self.final_expand(x)))
        x = self.feature_mix_act(self.feature_mix(self.pool(x)))
        return self.classifier(torch.flatten(x, 1))


class Stem(nn.Module):
    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.conv = nn.Conv2d(spec.in_channels, spec.stem_width, 3, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(spec.stem_width)
        self.act = nn.Hardswish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class ElasticMobileNetV3(nn.Module):
    def __init__(self, spec: ArchSpec | None = None) -> None:
        super().__init__()
        self.spec = spec or ArchSpec()
        self.stem = Stem(self.spec)
        stages: list[nn.ModuleList] = []
        in_c = self.spec.stem_width
        for stage in self.spec.stages:
            blocks = nn.ModuleList()
            for b in range(self.spec.max_depth):
                stride = stage.stride if b == 0 else 1
                blocks.append(ElasticBlock(in_c, stage.width, stride, stage.hswish, self.spec))
                in_c = stage.width
            stages.append(blocks)
        self.stages = nn.ModuleList(stages)
        self.head = Head(in_c, self.spec)

    def active_blocks(self, config: Mapping[str, Any]) -> list[tuple[ElasticBlock, int, int]]:
        out = []
        for s, blocks in enumerate(self.stages):
            assert isinstance(blocks, nn.ModuleList)
            for b in range(int(config[f"s{s}.depth"])):
                block = blocks[b]
                assert isinstance(block, ElasticBlock)
                out.append(
                    (block, int(config[f"s{s}.b{b}.kernel"]), int(config[f"s{s}.b{b}.expand"]))
                )
        return out

    def forward(self, x: torch.Tensor, config: Mapping[str, Any]) -> torch.Tensor:
        x = self.stem(x)
        for block, kernel, expand in self.active_blocks(config):
            x = block(x, kernel, expand)
        return self.head(x)

    def build_static(self, config: Mapping[str, Any]) -> nn.Sequential:
        stem = Stem(self.spec)
        head = Head(self.head.final_expand.in_channels, self.spec)
        stem.load_state_dict(self.stem.state_dict())
        head.load_state_dict(self.head.state_dict())
        blocks = [block.build_static(k, e) for block, k, e in self.active_blocks(config)]
        return nn.Sequential(stem, *blocks, head)
