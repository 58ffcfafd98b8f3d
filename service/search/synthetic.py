"""A synthetic but non-trivial validation function for any search space (tests, benchmarks).

Accuracy (percent) saturates in a weighted capacity with random pairwise interactions and a little
deterministic per-network noise; latency (ms) grows with a cost that is correlated with capacity
but not proportional to it, so the accuracy/latency front has a real trade-off. Inactive genes
contribute nothing, so equal networks score equally. Clearly not a measurement.

Values are rounded to `DECIMALS` decimals (as a measurement is quoted), so the last bits of
`exp` (numpy's and libm's differ between CPUs) never reach the search.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from service.supernets.space import Config, SearchSpace

DECIMALS = 6


class SyntheticValidator:
    """`validate(configs) -> [{"accuracy": %, "latency@<device>": ms}]`; counts its calls."""

    def __init__(self, space: SearchSpace, seed: int = 0, device: str = "host") -> None:
        rng = np.random.default_rng(seed)
        self.space = space
        self.device = device
        self.calls = 0
        self.seen: list[str] = []
        k = space.n_choices
        steps = [np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1) for n in k]
        value = rng.uniform(0.2, 1.0, len(k))
        cost = np.clip(value * rng.uniform(0.3, 1.7, len(k)), 0.05, None)
        self._gain = [v * s for v, s in zip(value, steps, strict=True)]
        self._cost = [c * s**1.3 for c, s in zip(cost, steps, strict=True)]
        self._pairs = rng.choice(len(k), size=(len(k), 2)) if len(k) > 1 else np.zeros((0, 2), int)
        self._pair_weight = rng.normal(0.0, 0.25, len(self._pairs))
        self._scale = float(np.sum(value)) / 3.0

    def metrics(self, config: Mapping[str, Any]) -> dict[str, float]:
        canonical = self.space.canonical(config)
        index = self.space.to_indices(canonical)
        active = self.space.active_mask(canonical)
        gain = sum(self._gain[g][i] for g, i in enumerate(index) if active[g])
        cost = sum(self._cost[g][i] for g, i in enumerate(index) if active[g])
        share = index / np.maximum(self.space.n_choices - 1, 1) * active
        gain += float(
            np.sum(self._pair_weight * share[self._pairs[:, 0]] * share[self._pairs[:, 1]])
        )
        digest = hashlib.sha256(self.space.config_hash(canonical).encode()).digest()
        noise = (int.from_bytes(digest[:4], "big") / 2**32 - 0.5) * 0.4
        accuracy = 99.0 - 30.0 * math.exp(-max(gain, 0.0) / self._scale) + noise
        latency_ms = 1.0 + 2.0 * cost + 0.2 * float(np.sum(active))
        return {
            "accuracy": round(float(accuracy), DECIMALS),
            f"latency@{self.device}": round(float(latency_ms), DECIMALS),
        }

    def __call__(self, configs: Sequence[Config]) -> list[dict[str, float]]:
        self.calls += len(configs)
        self.seen.extend(self.space.config_hash(c) for c in configs)
        return [self.metrics(c) for c in configs]


def synthetic_macs(space: SearchSpace) -> Any:
    """An exact-metric function: `macs` as a deterministic sum over active genes' indices."""

    def exact(config: Config) -> dict[str, float]:
        canonical = space.canonical(config)
        index = space.to_indices(canonical) * space.active_mask(canonical)
        return {"macs": float(1e6 + 1e5 * np.sum((index + 1) * np.arange(1, len(index) + 1)))}

    return exact
