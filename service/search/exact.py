"""Exact metrics (MACs, params, ...): computed by a caller's function, cached by network."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from service.search.encoding import SpaceEncoding, row_key
from service.supernets.space import Config

ExactMetricsFn = Callable[[Config], dict[str, float]]


class ExactMetrics:
    """Wraps `exact_metrics(config)`; `names` are the metrics it returns (probed once)."""

    def __init__(self, encoding: SpaceEncoding, compute: ExactMetricsFn | None) -> None:
        self.encoding = encoding
        self.compute = compute
        self._cache: dict[bytes, dict[str, float]] = {}
        probe = encoding.space.smallest()
        self.names: frozenset[str] = (
            frozenset(self.of_config(probe)) if compute is not None else frozenset()
        )

    def of_config(self, config: Config) -> dict[str, float]:
        if self.compute is None:
            return {}
        return self._get(row_key(self.encoding.row_of(config)), config)

    def _get(self, key: bytes, config: Config) -> dict[str, float]:
        if self.compute is None:
            return {}
        if key not in self._cache:
            values = self.compute(config)
            self._cache[key] = {name: float(v) for name, v in values.items()}
        return self._cache[key]

    def columns(self, rows: np.ndarray, metrics: Sequence[str]) -> dict[str, np.ndarray]:
        """Columns of the exact metrics among `metrics` for canonical index rows."""
        wanted = [m for m in metrics if m in self.names]
        if not wanted:
            return {}
        values = [self._get(row_key(r), self.encoding.config_of(r)) for r in rows]
        return {m: np.array([v[m] for v in values], dtype=float) for m in wanted}
