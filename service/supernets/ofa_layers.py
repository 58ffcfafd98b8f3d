"""Layers of Once-for-All's MobileNetV3 supernet, written for hwnas, in OFA's parameter layout.

Every module here holds its parameters under the attribute names OFA's modules use (`conv`, `bn`,
`fc.reduce`, `7to5_matrix`, …), so a state dict of OFA's released checkpoints loads with
`strict=True`. The elastic ("dynamic") layers hold the largest weights and slice them the way OFA
does: leading channels (OFA sorts channels by importance before saving, so a prefix is the
sub-network's channels), and smaller depthwise kernels through the kernel transformation matrices
(centre crop of the next larger kernel, flattened, times the matrix transposed, 7→5→3).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

CHANNEL_DIVISIBLE = 8
SE_REDUCTION = 4


def make_divisible(value: float, divisor: int = CHANNEL_DIVISIBLE) -> int:
    """Round to the nearest multiple of `divisor` (at least `divisor`), never 10 % below `value`
    (the MobileNet rounding rule OFA uses for every channel count)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def middle_channels(in_channels: int, expand: float) -> int:
    return make_divisible(round(in_channels * expand))


def se_channels(channels: int) -> int:
    return make_divisible(channels // SE_REDUCTION)


def activation(x: torch.Tensor, hswish: bool) -> torch.Tensor:
    return F.hardswish(x) if hswish else F.relu(x)


def centre_slice(size: int, sub: int) -> slice:
    start = size // 2 - sub // 2
    return slice(start, start + sub)


class Slot(nn.Module):
    """A container whose only job is to give parameters OFA's names (`conv`, `bn`, `se`, …)."""

    def __init__(self, **modules: nn.Module) -> None:
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)


def conv(in_c: int, out_c: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_c, out_c, kernel, stride, kernel // 2, groups=groups, bias=False)


def batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)


def sliced_batch_norm(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    """Inference-mode batch norm over the first `x.size(1)` channels of `bn`."""
    c = x.size(1)
    assert bn.running_mean is not None and bn.running_var is not None
    return F.batch_norm(
        x, bn.running_mean[:c], bn.running_var[:c], bn.weight[:c], bn.bias[:c], False, 0.0, bn.eps
    )


class SqueezeExcite(nn.Module):
    """OFA's SEModule: mean → 1×1 reduce (bias) → ReLU → 1×1 expand (bias) → hard sigmoid → ×."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        mid = se_channels(channels)
        self.fc = Slot(
            reduce=nn.Conv2d(channels, mid, 1, bias=True),
            expand=nn.Conv2d(mid, channels, 1, bias=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x, x.size(1))

    def gate(self, x: torch.Tensor, channels: int) -> torch.Tensor:
        """Excitation of the first `channels` channels, weights sliced as OFA's DynamicSE."""
        mid = se_channels(channels)
        reduce, expand = self.fc.reduce, self.fc.expand
        assert isinstance(reduce, nn.Conv2d) and isinstance(expand, nn.Conv2d)
        assert reduce.bias is not None and expand.bias is not None
        y = x.mean((2, 3), keepdim=True)
        y = F.relu(F.conv2d(y, reduce.weight[:mid, :channels], reduce.bias[:mid]))
        y = F.conv2d(y, expand.weight[:channels, :mid], expand.bias[:channels])
        return F.hardsigmoid(y)


class StaticMBConv(nn.Module):
    """OFA's MBConvLayer: [1×1 expand, BN, act] → k×k depthwise, BN, act, [SE] → 1×1, BN."""

    def __init__(
        self,
        in_c: int,
        out_c: int,
        mid: int,
        kernel: int,
        stride: int,
        hswish: bool,
        se: bool,
    ) -> None:
        super().__init__()
        self.hswish = hswish
        self.inverted_bottleneck = (
            Slot(conv=conv(in_c, mid), bn=batch_norm(mid)) if mid != in_c else None
        )
        depth = {"conv": conv(mid, mid, kernel, stride, groups=mid), "bn": batch_norm(mid)}
        if se:
            depth["se"] = SqueezeExcite(mid)
        self.depth_conv = Slot(**depth)
        self.point_linear = Slot(conv=conv(mid, out_c), bn=batch_norm(out_c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inverted_bottleneck is not None:
            x = self.get_submodule("inverted_bottleneck.conv")(x)
            x = activation(self.get_submodule("inverted_bottleneck.bn")(x), self.hswish)
        x = self.get_submodule("depth_conv.conv")(x)
        x = activation(self.get_submodule("depth_conv.bn")(x), self.hswish)
        if hasattr(self.depth_conv, "se"):
            x = self.get_submodule("depth_conv.se")(x)
        x = self.get_submodule("point_linear.conv")(x)
        return self.get_submodule("point_linear.bn")(x)


class DynamicDepthwise(nn.Module):
    """OFA's DynamicSeparableConv2d: the largest depthwise kernel plus one transformation matrix
    per kernel step (`7to5_matrix`, `5to3_matrix`), initialised to the identity."""

    def __init__(self, channels: int, kernels: Sequence[int], stride: int) -> None:
        super().__init__()
        self.kernels = sorted(kernels)
        self.stride = stride
        self.conv = conv(channels, channels, max(self.kernels), stride, groups=channels)
        for small, large in zip(self.kernels[:-1], self.kernels[1:], strict=True):
            self.register_parameter(
                f"{large}to{small}_matrix", nn.Parameter(torch.eye(small * small))
            )

    def matrix(self, large: int, small: int) -> torch.Tensor:
        param = getattr(self, f"{large}to{small}_matrix")
        assert isinstance(param, torch.Tensor)
        return param

    def active_filter(self, channels: int, kernel: int) -> torch.Tensor:
        """The (channels, 1, kernel, kernel) filter of a sub-network, as OFA derives it."""
        if kernel not in self.kernels:
            raise ValueError(f"kernel {kernel} is not one of {self.kernels}")
        weight = self.conv.weight[:channels]
        current = self.kernels[-1]
        for small in reversed(self.kernels[:-1]):
            if current <= kernel:
                break
            part = weight[:, :, centre_slice(current, small), centre_slice(current, small)]
            flat = F.linear(part.reshape(channels, small * small), self.matrix(current, small))
            weight, current = flat.reshape(channels, 1, small, small), small
        return weight


class DynamicMBConv(nn.Module):
    """OFA's DynamicMBConvLayer: one inverted-residual block at its largest expand ratio and
    kernel; `forward(x, kernel, expand)` runs a sub-block, `build_static` copies one out."""

    def __init__(
        self,
        in_c: int,
        out_c: int,
        stride: int,
        hswish: bool,
        se: bool,
        kernels: Sequence[int],
        expands: Sequence[float],
    ) -> None:
        super().__init__()
        self.in_c, self.out_c, self.stride, self.hswish, self.se = in_c, out_c, stride, hswish, se
        max_mid = middle_channels(in_c, max(expands))
        self.inverted_bottleneck = Slot(conv=Slot(conv=conv(in_c, max_mid)), bn=_bn_slot(max_mid))
        depth: dict[str, nn.Module] = {
            "conv": DynamicDepthwise(max_mid, kernels, stride),
            "bn": _bn_slot(max_mid),
        }
        if se:
            depth["se"] = SqueezeExcite(max_mid)
        self.depth_conv = Slot(**depth)
        self.point_linear = Slot(conv=Slot(conv=conv(max_mid, out_c)), bn=_bn_slot(out_c))

    def parts(self) -> tuple[nn.Conv2d, nn.BatchNorm2d, DynamicDepthwise, nn.BatchNorm2d]:
        expand_conv = self.get_submodule("inverted_bottleneck.conv.conv")
        expand_bn = self.get_submodule("inverted_bottleneck.bn.bn")
        depthwise = self.get_submodule("depth_conv.conv")
        depth_bn = self.get_submodule("depth_conv.bn.bn")
        assert isinstance(expand_conv, nn.Conv2d) and isinstance(expand_bn, nn.BatchNorm2d)
        assert isinstance(depthwise, DynamicDepthwise) and isinstance(depth_bn, nn.BatchNorm2d)
        return expand_conv, expand_bn, depthwise, depth_bn

    def point_parts(self) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
        point_conv = self.get_submodule("point_linear.conv.conv")
        point_bn = self.get_submodule("point_linear.bn.bn")
        assert isinstance(point_conv, nn.Conv2d) and isinstance(point_bn, nn.BatchNorm2d)
        return point_conv, point_bn

    def forward(self, x: torch.Tensor, kernel: int, expand: float) -> torch.Tensor:
        mid = middle_channels(self.in_c, expand)
        expand_conv, expand_bn, depthwise, depth_bn = self.parts()
        point_conv, point_bn = self.point_parts()
        y = F.conv2d(x, expand_conv.weight[:mid, : self.in_c])
        y = activation(sliced_batch_norm(y, expand_bn), self.hswish)
        weight = depthwise.active_filter(mid, kernel)
        y = F.conv2d(y, weight, None, self.stride, kernel // 2, 1, mid)
        y = activation(sliced_batch_norm(y, depth_bn), self.hswish)
        if self.se:
            se = self.depth_conv.se
            assert isinstance(se, SqueezeExcite)
            y = y * se.gate(y, mid)
        y = F.conv2d(y, point_conv.weight[:, :mid])
        return sliced_batch_norm(y, point_bn)

    @torch.no_grad()
    def build_static(self, kernel: int, expand: float) -> StaticMBConv:
        """A standalone block holding this block's weights sliced for (kernel, expand)."""
        mid = middle_channels(self.in_c, expand)
        block = StaticMBConv(self.in_c, self.out_c, mid, kernel, self.stride, self.hswish, self.se)
        block.load_state_dict(self.sliced_state(kernel, expand), strict=True)
        return block

    def sliced_state(self, kernel: int, expand: float) -> dict[str, torch.Tensor]:
        """The state dict of the static block for (kernel, expand), keyed as `StaticMBConv`'s."""
        mid = middle_channels(self.in_c, expand)
        own = self.state_dict()
        _, _, depthwise, _ = self.parts()
        out = {"depth_conv.conv.weight": depthwise.active_filter(mid, kernel)}
        out["inverted_bottleneck.conv.weight"] = own["inverted_bottleneck.conv.conv.weight"][:mid]
        out["point_linear.conv.weight"] = own["point_linear.conv.conv.weight"][:, :mid]
        for static, dynamic, channels in (
            ("inverted_bottleneck.bn", "inverted_bottleneck.bn.bn", mid),
            ("depth_conv.bn", "depth_conv.bn.bn", mid),
            ("point_linear.bn", "point_linear.bn.bn", self.out_c),
        ):
            for name in ("weight", "bias", "running_mean", "running_var"):
                out[f"{static}.{name}"] = own[f"{dynamic}.{name}"][:channels]
            out[f"{static}.num_batches_tracked"] = own[f"{dynamic}.num_batches_tracked"]
        if self.se:
            se_mid, fc = se_channels(mid), "depth_conv.se.fc"
            out[f"{fc}.reduce.weight"] = own[f"{fc}.reduce.weight"][:se_mid, :mid]
            out[f"{fc}.reduce.bias"] = own[f"{fc}.reduce.bias"][:se_mid]
            out[f"{fc}.expand.weight"] = own[f"{fc}.expand.weight"][:mid, :se_mid]
            out[f"{fc}.expand.bias"] = own[f"{fc}.expand.bias"][:mid]
        return {k: v.detach().clone() for k, v in out.items()}


def _bn_slot(channels: int) -> Slot:
    return Slot(bn=batch_norm(channels))


class ConvLayer(nn.Module):
    """OFA's ConvLayer: conv (no bias) → [BN] → h-swish."""

    def __init__(self, in_c: int, out_c: int, kernel: int, stride: int, use_bn: bool) -> None:
        super().__init__()
        self.conv = conv(in_c, out_c, kernel, stride)
        self.bn = batch_norm(out_c) if use_bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return F.hardswish(self.bn(x) if self.bn is not None else x)


class LinearLayer(nn.Module):
    """OFA's LinearLayer (dropout is a no-op at inference and has no parameters)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)
