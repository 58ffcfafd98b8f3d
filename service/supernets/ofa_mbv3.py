"""The `ofa-mbv3-w1.0` and `ofa-mbv3-w1.2` families: OFA's MobileNetV3 supernets in hwnas.

Costs are counted as OFA's `count_net_flops` and DyNAS-T count them: multiply-accumulates of
every convolution (squeeze-excite's 1×1 convolutions included) and of the classifier at the
sub-network's resolution, batch 1; params are the built sub-network's trainable parameters
(convolution and linear weights and biases, BN affine weights and biases, the kernel transform
matrices excluded as the sub-network has none). Layer keys are OFA's latency-table keys
(`MBv3LatencyTable`), so OFA's per-device yaml tables apply as they are.

Weights: `load_ofa_mbv3(width, checkpoint)` reads an OFA checkpoint (`{"state_dict": …}` or a
bare state dict); without one the family still answers costs and layer keys but refuses to build
or evaluate sub-networks (random weights only where asked for, as the tests do).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from service.supernets.accuracy import top1_accuracy
from service.supernets.checksum import CheckpointError, sha256_of
from service.supernets.data_options import UnsupportedResolutionError
from service.supernets.image_folder import ImageSplits
from service.supernets.ofa_config import (
    block_lists,
    canonical_config,
    from_ofa,
    ofa_search_space,
    to_ofa,
)
from service.supernets.ofa_layers import se_channels
from service.supernets.ofa_mbv3_net import (
    BlockShape,
    MBv3Arch,
    OFAMobileNetV3,
    normalise_ofa_state_dict,
)
from service.supernets.space import Config

WIDTHS = {"ofa-mbv3-w1.0": 1.0, "ofa-mbv3-w1.2": 1.2}
# The resolutions each released supernet was trained for (OFA's README: 128–224 and 160–224).
RESOLUTIONS = {
    "ofa-mbv3-w1.0": tuple(range(128, 225, 16)),
    "ofa-mbv3-w1.2": tuple(range(160, 225, 16)),
}
DEFAULT_CALIBRATION_BATCH = 100
RECALIBRATED_KEPT = 32

# Images per forward when scoring accuracy: ImageNet-sized inputs, so smaller than mbv3-digits'.
EVALUATION_BATCH = 100


@dataclass(frozen=True)
class OFAOp:
    key: str
    macs: int
    params: int


def _shape(h: int, c: int) -> str:
    return f"{h}x{h}x{c}"


def block_op(block: BlockShape) -> OFAOp:
    h, ho, mid, k = block.in_size, block.out_size, block.mid, block.kernel
    expands = mid != block.in_c
    macs = h * h * block.in_c * mid if expands else 0
    params = block.in_c * mid + 2 * mid if expands else 0
    macs += ho * ho * mid * k * k + ho * ho * mid * block.out_c
    params += mid * k * k + 2 * mid + mid * block.out_c + 2 * block.out_c
    if block.se:
        se = se_channels(mid)
        macs += 2 * mid * se
        params += 2 * mid * se + se + mid
    key = (
        f"expanded_conv-input:{_shape(h, block.in_c)}-output:{_shape(ho, block.out_c)}"
        f"-expand:{mid}-kernel:{k}-stride:{block.stride}-idskip:{int(block.residual)}"
        f"-se:{int(block.se)}-hs:{int(block.hswish)}"
    )
    return OFAOp(key, macs, params)


def network_ops(arch: MBv3Arch, resolution: int, blocks: Sequence[BlockShape]) -> list[OFAOp]:
    """Every op of a sub-network in execution order, with OFA's LUT key, MACs and params."""
    stem, c6, c7 = arch.stem_width, arch.stage_widths[-1], arch.final_expand_width
    c8 = arch.last_channel
    h = blocks[0].in_size
    stem_key = f"Conv-input:{_shape(resolution, 3)}-output:{_shape(h, stem)}"
    ops = [OFAOp(stem_key, 27 * stem * h * h, 27 * stem + 2 * stem)]
    ops.extend(block_op(b) for b in blocks)
    h = blocks[-1].out_size
    ops += [
        OFAOp(
            f"Conv_1-input:{_shape(h, c6)}-output:{_shape(h, c7)}",
            h * h * c6 * c7,
            c6 * c7 + 2 * c7,
        ),
        OFAOp(f"AvgPool2D-input:{_shape(h, c7)}-output:{_shape(1, c7)}", 0, 0),
        OFAOp(f"Conv_2-input:{_shape(1, c7)}-output:{_shape(1, c8)}", c7 * c8, c7 * c8),
        OFAOp(
            f"Logits-input:{_shape(1, c8)}-output:{arch.n_classes}",
            c8 * arch.n_classes,
            c8 * arch.n_classes + arch.n_classes,
        ),
    ]
    return ops


class OFAMobileNetV3Supernet:
    """The `Supernet` protocol over an `OFAMobileNetV3` (configs in gene form or OFA form)."""

    def __init__(
        self,
        family: str,
        model: OFAMobileNetV3 | None = None,
        data: ImageSplits | None = None,
        checkpoint_sha256: str | None = None,
        calibration_batch: int = DEFAULT_CALIBRATION_BATCH,
        resolutions: Sequence[int] | None = None,
    ) -> None:
        """`resolutions` restricts the resolution gene (e.g. to the one a latency table has)."""
        if family not in WIDTHS:
            raise ValueError(f"unknown OFA MobileNetV3 family {family!r}; known: {list(WIDTHS)}")
        trained = RESOLUTIONS[family]
        chosen = tuple(sorted(resolutions)) if resolutions is not None else trained
        if not chosen or not set(chosen) <= set(trained):
            raise UnsupportedResolutionError(
                f"{family} takes resolutions from {list(trained)}, not {resolutions}"
            )
        self.family = family
        self.arch = model.arch if model is not None else MBv3Arch(WIDTHS[family])
        self.space = ofa_search_space(
            self.arch.kernels, self.arch.expands, self.arch.depths, chosen
        )
        self._model = model.eval() if model is not None else None
        self.data = data
        self.dataset = data.name if data is not None else "imagenet"
        self.checkpoint_sha256 = checkpoint_sha256
        self.calibration_batch = calibration_batch
        self._recalibrated: OrderedDict[str, nn.Module] = OrderedDict()

    @classmethod
    def random(cls, family: str, seed: int = 0, **kwargs: Any) -> OFAMobileNetV3Supernet:
        """Random weights in OFA's layout: for tests and cost studies only."""
        torch.manual_seed(seed)
        return cls(family, OFAMobileNetV3(MBv3Arch(WIDTHS[family])), **kwargs)

    @property
    def model(self) -> OFAMobileNetV3:
        if self._model is None:
            raise CheckpointError(
                f"family {self.family!r} was loaded without a checkpoint: it answers costs and "
                "layer keys only; register it with OFA's checkpoint "
                f"(ofa_mbv3_d234_e346_k357_w{WIDTHS[self.family]}) to build or evaluate networks"
            )
        return self._model

    def canonical(self, config: Mapping[str, Any]) -> Config:
        return canonical_config(config, self.space)

    def from_ofa(self, config: Mapping[str, Any]) -> Config:
        return from_ofa(config, self.space)

    def to_ofa(self, config: Mapping[str, Any]) -> dict[str, list[int]]:
        return to_ofa(config, self.space)

    def resolution(self, config: Mapping[str, Any]) -> int:
        return int(self.canonical(config)["resolution"])

    def blocks(self, config: Mapping[str, Any]) -> list[BlockShape]:
        resolution, depths, kernels, expands = block_lists(self.canonical(config), self.space)
        return self.arch.blocks(resolution, depths, kernels, expands)

    def ops(self, config: Mapping[str, Any]) -> list[OFAOp]:
        return network_ops(self.arch, self.resolution(config), self.blocks(config))

    def layer_keys(self, config: Mapping[str, Any]) -> list[str]:
        return [op.key for op in self.ops(config)]

    def all_layer_keys(self) -> list[str]:
        """Every op key of every sub-network at every resolution (what a full LUT covers)."""
        keys: dict[str, None] = {}
        for resolution in self.space.gene("resolution").choices:
            keys.update(dict.fromkeys(self.layer_keys_at(int(resolution))))
        return list(keys)

    def layer_keys_at(self, resolution: int) -> list[str]:
        """Every op key any sub-network runs at `resolution`: each kernel × expand at each block
        position (the first block of a stage and the later ones differ in shape)."""
        keys: dict[str, None] = {}
        depth = max(self.arch.depths)
        for kernel in self.arch.kernels:
            for expand in self.arch.expands:
                n = 5 * depth
                blocks = self.arch.blocks(resolution, [depth] * 5, [kernel] * n, [expand] * n)
                ops = network_ops(self.arch, resolution, blocks)
                keys.update(dict.fromkeys(op.key for op in ops))
        return list(keys)

    def macs(self, config: Mapping[str, Any]) -> int:
        return sum(op.macs for op in self.ops(config))

    def params(self, config: Mapping[str, Any]) -> int:
        return sum(op.params for op in self.ops(config))

    def example_input(self, batch: int, config: Mapping[str, Any] | None = None) -> torch.Tensor:
        """Input of a sub-network at its resolution (the largest when no config is given)."""
        size = (
            self.resolution(config)
            if config is not None
            else max(int(r) for r in self.space.gene("resolution").choices)
        )
        generator = torch.Generator().manual_seed(0)
        return torch.randn(batch, 3, size, size, generator=generator)

    def build_subnet(self, config: Mapping[str, Any], recalibrate: bool = True) -> nn.Module:
        """A standalone sub-network with OFA's weight slicing; batch-norm statistics recomputed
        on the calibration split at the sub-network's resolution when one is set (OFA's
        `set_running_statistics`), else the supernet's own."""
        if not recalibrate or self.data is None:
            return self.model.build_static(self.blocks(config)).eval()
        # Validation builds each network twice (accuracy, then ONNX export): keep the latest
        # recalibrated ones and hand out copies.
        digest = self.space.config_hash(self.canonical(config))
        if digest not in self._recalibrated:
            subnet = self.model.build_static(self.blocks(config))
            images = self.data.calibration.images(self.resolution(config))
            set_running_statistics(subnet, in_batches(images, self.calibration_batch))
            self._recalibrated[digest] = subnet.eval()
            while len(self._recalibrated) > RECALIBRATED_KEPT:
                self._recalibrated.popitem(last=False)
        return copy.deepcopy(self._recalibrated[digest])

    def evaluate_accuracy(self, configs: Sequence[Mapping[str, Any]]) -> list[float]:
        if self.data is None:
            raise CheckpointError(
                f"family {self.family!r} has no image data: register it with an image folder "
                "(calibration and evaluation splits) to measure accuracy"
            )
        out = []
        for config in configs:
            resolution = self.resolution(config)
            images = self.data.evaluation.images(resolution)
            labels = self.data.evaluation.labels
            subnet = self.build_subnet(config)
            out.append(top1_accuracy(subnet, images, labels, batch=EVALUATION_BATCH))
        return out


def in_batches(images: torch.Tensor, size: int) -> list[torch.Tensor]:
    return [images[i : i + size] for i in range(0, len(images), size)]


class _Moments:
    def __init__(self) -> None:
        self.mean_sum = torch.zeros(())
        self.var_sum = torch.zeros(())
        self.count = 0

    def update(self, x: torch.Tensor) -> None:
        mean = x.mean((0, 2, 3))
        var = ((x - mean[None, :, None, None]) ** 2).mean((0, 2, 3))
        n = x.size(0)
        self.mean_sum = self.mean_sum + mean * n
        self.var_sum = self.var_sum + var * n
        self.count += n


@torch.no_grad()
def set_running_statistics(module: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """OFA's batch-norm recalibration: run the batches with every BN normalising by its batch's
    statistics; each BN's running mean and variance become the batch-size-weighted average of
    its per-batch mean and (biased) variance."""
    layers = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    moments = {id(m): _Moments() for m in layers}
    hooks = [
        m.register_forward_pre_hook(lambda m, args: moments[id(m)].update(args[0])) for m in layers
    ]
    saved = [(m.running_mean.clone(), m.running_var.clone()) for m in layers]  # type: ignore[union-attr]
    was_training = module.training
    module.train()
    try:
        for batch in batches:
            module(batch)
    finally:
        for hook in hooks:
            hook.remove()
        module.train(was_training)
    for m, (mean, var) in zip(layers, saved, strict=True):
        stats = moments[id(m)]
        assert m.running_mean is not None and m.running_var is not None
        if stats.count == 0:
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            continue
        m.running_mean.copy_(stats.mean_sum / stats.count)
        m.running_var.copy_(stats.var_sum / stats.count)


def read_ofa_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of an OFA checkpoint file (`{"state_dict": …}` or bare)."""
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad file
        raise CheckpointError(f"checkpoint {path} cannot be read by torch.load: {error}") from error
    state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {path} holds no state dict of tensors")
    return state


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Strict load that names missing, unexpected and mis-shaped keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        shapes = [f"{k}: {tuple(state[k].shape)} (expected {tuple(own[k].shape)})" for k in wrong]
        raise CheckpointError(
            f"checkpoint does not match {what}: "
            f"missing {missing[:10]} ({len(missing)}), unexpected {unexpected[:10]} "
            f"({len(unexpected)}), wrong shape {shapes[:10]} ({len(wrong)})"
        )
    model.load_state_dict(state, strict=True)


def load_ofa_mbv3(
    family: str,
    checkpoint: str | Path | None = None,
    data: ImageSplits | None = None,
    resolutions: Sequence[int] | None = None,
) -> OFAMobileNetV3Supernet:
    """The family with OFA's weights from `checkpoint`, or costs/keys only without one."""
    if checkpoint is None:
        return OFAMobileNetV3Supernet(family, data=data, resolutions=resolutions)
    path = Path(checkpoint)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    model = OFAMobileNetV3(MBv3Arch(WIDTHS[family]))
    state = normalise_ofa_state_dict(read_ofa_checkpoint(path))
    load_state(model, state, f"OFA MobileNetV3 w{WIDTHS[family]}")
    digest = sha256_of(path)
    return OFAMobileNetV3Supernet(
        family, model, data, checkpoint_sha256=digest, resolutions=resolutions
    )
