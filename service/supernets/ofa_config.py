"""The OFA MobileNetV3 search space in hwnas's gene form, and OFA/DyNAS-T's dict form.

Gene form: `resolution`, then per stage `s{s}.depth` and per block `s{s}.b{b}.kernel` /
`s{s}.b{b}.expand` (blocks beyond the minimum depth active only when the stage is deep enough).

OFA form, as OFA's `sample_active_subnet` and DyNAS-T write it:
`{"ks": [20 ints], "e": [20 ints], "d": [5 ints], "r": [224]}` — `ks`/`e` indexed by block
(stage × 4 + position, all 20 given even where a stage is shallower), `d` per stage, `r` the input
resolution (a one-element list or an int; OFA's own configs omit it, which means 224).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.supernets.space import ActiveWhen, Config, Gene, InvalidConfigError, SearchSpace

OFA_KEYS = ("ks", "e", "d")
RESOLUTIONS = tuple(range(128, 225, 16))
DEFAULT_RESOLUTION = 224
STAGES = 5
BLOCKS_PER_STAGE = 4


def ofa_search_space(
    kernels: tuple[int, ...] = (3, 5, 7),
    expands: tuple[int, ...] = (3, 4, 6),
    depths: tuple[int, ...] = (2, 3, 4),
    resolutions: tuple[int, ...] = RESOLUTIONS,
) -> SearchSpace:
    genes = [Gene("resolution", resolutions)]
    for s in range(STAGES):
        genes.append(Gene(f"s{s}.depth", depths))
        for b in range(max(depths)):
            cond = ActiveWhen(f"s{s}.depth", b + 1) if b + 1 > min(depths) else None
            genes.append(Gene(f"s{s}.b{b}.kernel", kernels, cond))
            genes.append(Gene(f"s{s}.b{b}.expand", expands, cond))
    return SearchSpace(tuple(genes))


def is_ofa_form(config: Mapping[str, Any]) -> bool:
    return any(key in config for key in OFA_KEYS)


def _int_list(config: Mapping[str, Any], key: str, length: int) -> list[int]:
    value = config.get(key)
    if not isinstance(value, list | tuple) or len(value) != length:
        raise InvalidConfigError(
            f"OFA config field {key!r} must be a list of {length} integers, got {value!r}"
        )
    if any(isinstance(v, bool) or not isinstance(v, int | float) or v != int(v) for v in value):
        raise InvalidConfigError(f"OFA config field {key!r} must hold integers, got {value!r}")
    return [int(v) for v in value]


def _resolution(config: Mapping[str, Any]) -> int:
    value = config.get("r", DEFAULT_RESOLUTION)
    if isinstance(value, list | tuple):
        if len(value) != 1:
            raise InvalidConfigError(f"OFA config field 'r' must hold one resolution, got {value}")
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise InvalidConfigError(f"OFA config field 'r' must be an integer, got {value!r}")
    return int(value)


def from_ofa(config: Mapping[str, Any], space: SearchSpace) -> Config:
    """An OFA/DyNAS-T dict as a canonical gene-form config of `space` (raises naming the field)."""
    unknown = sorted(set(config) - {*OFA_KEYS, "r"})
    if unknown:
        raise InvalidConfigError(
            f"unknown OFA config field(s) {unknown}; expected 'ks', 'e', 'd' and optionally 'r'"
        )
    depth_gene = space.gene("s0.depth")
    blocks = max(int(v) for v in depth_gene.choices)
    ks = _int_list(config, "ks", STAGES * blocks)
    e = _int_list(config, "e", STAGES * blocks)
    d = _int_list(config, "d", STAGES)
    genes: dict[str, Any] = {"resolution": _resolution(config)}
    for s in range(STAGES):
        genes[f"s{s}.depth"] = d[s]
        for b in range(blocks):
            genes[f"s{s}.b{b}.kernel"] = ks[s * blocks + b]
            genes[f"s{s}.b{b}.expand"] = e[s * blocks + b]
    return space.canonical(genes)


def to_ofa(config: Mapping[str, Any], space: SearchSpace) -> dict[str, list[int]]:
    """The OFA/DyNAS-T dict of a config (either form); inactive blocks carry canonical values."""
    canonical = canonical_config(config, space)
    blocks = max(int(v) for v in space.gene("s0.depth").choices)
    names = [(s, b) for s in range(STAGES) for b in range(blocks)]
    return {
        "ks": [int(canonical[f"s{s}.b{b}.kernel"]) for s, b in names],
        "e": [int(canonical[f"s{s}.b{b}.expand"]) for s, b in names],
        "d": [int(canonical[f"s{s}.depth"]) for s in range(STAGES)],
        "r": [int(canonical["resolution"])],
    }


def canonical_config(config: Mapping[str, Any], space: SearchSpace) -> Config:
    """Canonical gene form of a config given in gene form or in OFA form."""
    return from_ofa(config, space) if is_ofa_form(config) else space.canonical(config)


def block_lists(config: Config, space: SearchSpace) -> tuple[int, list[int], list[int], list[int]]:
    """(resolution, depths, kernels, expands) of a canonical config, lists in OFA's indexing."""
    ofa = to_ofa(config, space)
    return ofa["r"][0], ofa["d"], ofa["ks"], ofa["e"]
