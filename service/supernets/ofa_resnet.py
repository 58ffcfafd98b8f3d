"""The `ofa-resnet50` family: Once-for-All's elastic ResNet50-D in hwnas.

Gene form: `resolution` (128–224 step 16), `stem.depth` (2 runs the stem's residual layer, 0
skips it), `stem.w0` / `stem.w2` (width indices of the stem's layers 0–1 and 2), per stage
`s{s}.depth` (extra blocks 0–2) and `s{s}.width` (index into the multipliers 0.65 / 0.8 / 1.0),
per block `s{s}.b{b}.expand` (0.2 / 0.25 / 0.35).

OFA form, as `OFAResNets.sample_active_subnet` writes it: `{"d": [5], "e": [18], "w": [6]}` plus
an optional `"r"` (default 224): `d[0]` the stem depth (2, or below 2 to skip), `d[1:]` the
stages'; `e` per block of OFA's 18; `w[0]`, `w[1]` the stem width indices, `w[2:]` the stages'.

Costs count as OFA's `count_net_flops` (every convolution, the shortcut's included, and the
classifier; params of the built sub-network). Layer keys are hwnas's own (OFA publishes no
ResNet latency-table format): one key per stem convolution, max pool, bottleneck, pool, logits.
"""

from __future__ import annotations

import copy
import itertools
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from service.supernets.accuracy import top1_accuracy
from service.supernets.checksum import sha256_of
from service.supernets.data_options import UnsupportedResolutionError
from service.supernets.image_folder import ImageSplits
from service.supernets.ofa_layers import make_divisible
from service.supernets.ofa_mbv3 import (
    DEFAULT_CALIBRATION_BATCH,
    EVALUATION_BATCH,
    RECALIBRATED_KEPT,
    CheckpointError,
    in_batches,
    load_state,
    read_ofa_checkpoint,
    set_running_statistics,
)
from service.supernets.ofa_resnet_net import (
    BASE_DEPTHS,
    DEPTHS,
    EXPANDS,
    N_CLASSES,
    STAGE_WIDTHS,
    Bottleneck,
    OFAResNet50,
    ResNetPlan,
    block_offsets,
    plan_blocks,
    stem_widths,
    widths,
)
from service.supernets.space import ActiveWhen, Config, Gene, InvalidConfigError, SearchSpace

FAMILY = "ofa-resnet50"
RESOLUTIONS = tuple(range(128, 225, 16))
N_BLOCKS = sum(BASE_DEPTHS) + len(BASE_DEPTHS) * max(DEPTHS)


def resnet_search_space(resolutions: Sequence[int] = RESOLUTIONS) -> SearchSpace:
    genes = [
        Gene("resolution", tuple(resolutions)),
        Gene("stem.depth", (0, 2)),
        Gene("stem.w0", (0, 1, 2)),
        Gene("stem.w2", (0, 1, 2)),
    ]
    for s, base in enumerate(BASE_DEPTHS):
        genes += [Gene(f"s{s}.depth", DEPTHS), Gene(f"s{s}.width", (0, 1, 2))]
        for b in range(base + max(DEPTHS)):
            cond = ActiveWhen(f"s{s}.depth", b - base + 1) if b >= base else None
            genes.append(Gene(f"s{s}.b{b}.expand", EXPANDS, cond))
    return SearchSpace(tuple(genes))


def _numbers(config: Mapping[str, Any], key: str, length: int) -> list[Any]:
    value = config.get(key)
    if not isinstance(value, list | tuple) or len(value) != length:
        raise InvalidConfigError(
            f"OFA config field {key!r} must be a list of {length}, got {value!r}"
        )
    return list(value)


def resnet_from_ofa(config: Mapping[str, Any], space: SearchSpace) -> Config:
    unknown = sorted(set(config) - {"d", "e", "w", "r"})
    if unknown:
        raise InvalidConfigError(f"unknown OFA config field(s) {unknown}; expected d, e, w, r")
    d, e, w = _numbers(config, "d", 5), _numbers(config, "e", N_BLOCKS), _numbers(config, "w", 6)
    if d[0] not in DEPTHS:
        raise InvalidConfigError(
            f"OFA config d[0] (the stem depth) must be 0, 1 or 2, got {d[0]!r}"
        )
    r = config.get("r", 224)
    r = r[0] if isinstance(r, list | tuple) and len(r) == 1 else r
    genes: dict[str, Any] = {"resolution": r, "stem.depth": 2 if d[0] == 2 else 0}
    genes.update({"stem.w0": w[0], "stem.w2": w[1]})
    for s, (offset, base) in enumerate(zip(block_offsets(), BASE_DEPTHS, strict=True)):
        genes[f"s{s}.depth"], genes[f"s{s}.width"] = d[s + 1], w[s + 2]
        for b in range(base + max(DEPTHS)):
            genes[f"s{s}.b{b}.expand"] = e[offset + b]
    return space.canonical(genes)


def resnet_to_ofa(config: Config) -> dict[str, list[Any]]:
    e: list[Any] = []
    for s, base in enumerate(BASE_DEPTHS):
        e += [config[f"s{s}.b{b}.expand"] for b in range(base + max(DEPTHS))]
    stages = range(len(BASE_DEPTHS))
    return {
        "d": [config["stem.depth"], *(config[f"s{s}.depth"] for s in stages)],
        "e": e,
        "w": [config["stem.w0"], config["stem.w2"], *(config[f"s{s}.width"] for s in stages)],
        "r": [config["resolution"]],
    }


def plan_of(config: Config) -> ResNetPlan:
    mid_widths, out_widths = stem_widths()
    stem0, stem2 = mid_widths[int(config["stem.w0"])], out_widths[int(config["stem.w2"])]
    stages = [widths(base)[int(config[f"s{s}.width"])] for s, base in enumerate(STAGE_WIDTHS)]
    depths = [int(config[f"s{s}.depth"]) for s in range(len(BASE_DEPTHS))]
    expands = [float(x) for x in resnet_to_ofa(config)["e"]]
    resolution = int(config["resolution"])
    blocks = plan_blocks(resolution, stages, depths, expands, stem2)
    return ResNetPlan(resolution, config["stem.depth"] != 2, stem0, stem2, blocks)


def _hwc(h: int, c: int) -> str:
    return f"{h}x{h}x{c}"


def plan_ops(plan: ResNetPlan) -> list[tuple[str, int, int]]:
    """(key, MACs, params) of every op of a sub-network, in execution order."""
    r, c0, c2 = plan.resolution, plan.stem0, plan.stem2
    h = (r - 1) // 2 + 1
    ops = [(f"Conv-input:{_hwc(r, 3)}-output:{_hwc(h, c0)}", 27 * c0 * h * h, 27 * c0 + 2 * c0)]
    if not plan.skip_stem:
        ops.append(
            (
                f"Conv_res-input:{_hwc(h, c0)}-output:{_hwc(h, c0)}",
                9 * c0 * c0 * h * h,
                9 * c0 * c0 + 2 * c0,
            )
        )
    ops.append(
        (
            f"Conv-input:{_hwc(h, c0)}-output:{_hwc(h, c2)}",
            9 * c0 * c2 * h * h,
            9 * c0 * c2 + 2 * c2,
        )
    )
    hp = plan.blocks[0].in_size
    ops.append((f"MaxPool-input:{_hwc(h, c2)}-output:{_hwc(hp, c2)}", 0, 0))
    ops.extend(bottleneck_op(b) for b in plan.blocks)
    last, hl = plan.blocks[-1].out_c, plan.blocks[-1].out_size
    ops.append((f"AvgPool2D-input:{_hwc(hl, last)}-output:{_hwc(1, last)}", 0, 0))
    ops.append(
        (
            f"Logits-input:{_hwc(1, last)}-output:{N_CLASSES}",
            last * N_CLASSES,
            last * N_CLASSES + N_CLASSES,
        )
    )
    return ops


def bottleneck_op(b: Bottleneck) -> tuple[str, int, int]:
    convs = [(b.in_c, b.mid, 1, b.in_size), (b.mid, b.mid, 9, b.out_size)]
    convs.append((b.mid, b.out_c, 1, b.out_size))
    if b.shortcut_conv:
        convs.append((b.in_c, b.out_c, 1, b.out_size))
    key = (
        f"bottleneck-input:{_hwc(b.in_size, b.in_c)}-output:{_hwc(b.out_size, b.out_c)}"
        f"-mid:{b.mid}-stride:{b.stride}-downsample:{int(b.shortcut_conv)}"
    )
    macs = sum(i * o * k * size * size for i, o, k, size in convs)
    return key, macs, sum(i * o * k + 2 * o for i, o, k, _ in convs)


def all_keys_at(resolution: int) -> list[str]:
    """Every op key any sub-network runs at `resolution`, enumerated from the layer shapes."""
    mids, outs = stem_widths()
    keys: dict[str, None] = {}
    for c0, c2, skip in itertools.product(mids, outs, (False, True)):
        blocks = plan_blocks(
            resolution, [max(widths(w)) for w in STAGE_WIDTHS], [0] * 4, [0.25] * N_BLOCKS, c2
        )
        ops = plan_ops(ResNetPlan(resolution, skip, c0, c2, blocks))
        keys.update(
            dict.fromkeys(
                k for k, _, _ in ops if not k.startswith(("bottleneck", "AvgPool", "Logits"))
            )
        )
    first = plan_blocks(
        resolution, [max(widths(w)) for w in STAGE_WIDTHS], [2] * 4, [0.25] * N_BLOCKS, 64
    )
    in_choices = [outs, *(widths(w) for w in STAGE_WIDTHS[:-1])]
    for s, template in enumerate(b for b in first if b.index in block_offsets()):
        for in_c, out_c, e in itertools.product(in_choices[s], widths(STAGE_WIDTHS[s]), EXPANDS):
            mid = make_divisible(round(out_c * e))
            keys[bottleneck_op(replace(template, in_c=in_c, out_c=out_c, mid=mid))[0]] = None
            later = Bottleneck(template.index + 1, out_c, mid, out_c, 1, template.out_size)
            keys[bottleneck_op(later)[0]] = None
    h = first[-1].out_size
    for c in widths(STAGE_WIDTHS[-1]):
        keys[f"AvgPool2D-input:{_hwc(h, c)}-output:{_hwc(1, c)}"] = None
        keys[f"Logits-input:{_hwc(1, c)}-output:{N_CLASSES}"] = None
    return list(keys)


def normalise_resnet_state_dict(
    state: Mapping[str, torch.Tensor], own: Sequence[str]
) -> dict[str, torch.Tensor]:
    """OFA's ResNet loader renames: static names (`conv.weight`, `bn.x`, `linear.x`) to the
    dynamic layers' (`conv.conv.weight`, `bn.bn.x`, `linear.linear.x`); a `module.` prefix."""
    known, out = set(own), {}
    for key, value in state.items():
        name = key.removeprefix("module.")
        if name not in known:
            for old, new in (
                (".linear.", ".linear.linear."),
                ("bn.", "bn.bn."),
                ("conv.weight", "conv.conv.weight"),
            ):
                if old in name and name.replace(old, new) in known:
                    name = name.replace(old, new)
                    break
        out[name] = value
    return out


class OFAResNet50Supernet:
    """The `Supernet` protocol over an `OFAResNet50` (configs in gene form or OFA form)."""

    family = FAMILY

    def __init__(
        self,
        model: OFAResNet50 | None = None,
        data: ImageSplits | None = None,
        resolutions: Sequence[int] | None = None,
    ) -> None:
        """`resolutions` restricts the resolution gene (e.g. to the one a latency table has)."""
        chosen = tuple(sorted(resolutions)) if resolutions is not None else RESOLUTIONS
        if not chosen or not set(chosen) <= set(RESOLUTIONS):
            raise UnsupportedResolutionError(
                f"{FAMILY} takes resolutions from {list(RESOLUTIONS)}, not {resolutions}"
            )
        self.resolutions = chosen
        self.space = resnet_search_space(chosen)
        self._model = model.eval() if model is not None else None
        self.data = data
        self.dataset = data.name if data is not None else "imagenet"
        self.checkpoint_sha256: str | None = None
        self._recalibrated: OrderedDict[str, nn.Module] = OrderedDict()

    @classmethod
    def random(cls, seed: int = 0, **kwargs: Any) -> OFAResNet50Supernet:
        torch.manual_seed(seed)
        return cls(OFAResNet50(), **kwargs)

    @property
    def model(self) -> OFAResNet50:
        if self._model is None:
            raise CheckpointError(
                f"family {FAMILY!r} was loaded without a checkpoint: it answers costs and layer "
                "keys only; register it with OFA's ofa_supernet_resnet50 checkpoint"
            )
        return self._model

    def canonical(self, config: Mapping[str, Any]) -> Config:
        if any(k in config for k in ("d", "e", "w")):
            return resnet_from_ofa(config, self.space)
        return self.space.canonical(config)

    def to_ofa(self, config: Mapping[str, Any]) -> dict[str, list[Any]]:
        return resnet_to_ofa(self.canonical(config))

    def plan(self, config: Mapping[str, Any]) -> ResNetPlan:
        return plan_of(self.canonical(config))

    def layer_keys(self, config: Mapping[str, Any]) -> list[str]:
        return [key for key, _, _ in plan_ops(self.plan(config))]

    def all_layer_keys(self) -> list[str]:
        """Every op key of every sub-network at every resolution (what a full LUT covers)."""
        return [key for r in self.resolutions for key in all_keys_at(r)]

    def macs(self, config: Mapping[str, Any]) -> int:
        return sum(m for _, m, _ in plan_ops(self.plan(config)))

    def params(self, config: Mapping[str, Any]) -> int:
        return sum(p for _, _, p in plan_ops(self.plan(config)))

    def example_input(self, batch: int, config: Mapping[str, Any] | None = None) -> torch.Tensor:
        size = self.plan(config).resolution if config is not None else max(self.resolutions)
        return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))

    def build_subnet(self, config: Mapping[str, Any], recalibrate: bool = True) -> nn.Module:
        plan = self.plan(config)
        if not recalibrate or self.data is None:
            return self.model.build_static(plan)
        digest = self.space.config_hash(self.canonical(config))
        if digest not in self._recalibrated:
            subnet = self.model.build_static(plan)
            images = self.data.calibration.images(plan.resolution)
            set_running_statistics(subnet, in_batches(images, DEFAULT_CALIBRATION_BATCH))
            self._recalibrated[digest] = subnet.eval()
            while len(self._recalibrated) > RECALIBRATED_KEPT:
                self._recalibrated.popitem(last=False)
        return copy.deepcopy(self._recalibrated[digest])

    def evaluate_accuracy(self, configs: Sequence[Mapping[str, Any]]) -> list[float]:
        if self.data is None:
            raise CheckpointError(f"family {FAMILY!r} has no image data to measure accuracy on")
        data = self.data.evaluation
        return [
            top1_accuracy(
                self.build_subnet(c),
                data.images(self.plan(c).resolution),
                data.labels,
                batch=EVALUATION_BATCH,
            )
            for c in configs
        ]


def load_ofa_resnet50(
    checkpoint: str | Path | None = None,
    data: ImageSplits | None = None,
    resolutions: Sequence[int] | None = None,
) -> OFAResNet50Supernet:
    if checkpoint is None:
        return OFAResNet50Supernet(data=data, resolutions=resolutions)
    path = Path(checkpoint)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    model = OFAResNet50()
    state = normalise_resnet_state_dict(read_ofa_checkpoint(path), list(model.state_dict()))
    load_state(model, state, "OFA ResNet50")
    supernet = OFAResNet50Supernet(model, data, resolutions)
    supernet.checkpoint_sha256 = sha256_of(path)
    return supernet
