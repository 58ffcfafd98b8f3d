"""Config → feature matrix encodings that ignore inactive genes.

Every config is canonicalised first, then each active gene is encoded (one-hot, ordinal or
thermometer) and every inactive gene is all zeros, so two configs that build the same network
encode identically.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from service.supernets.space import Config, Gene, SearchSpace

Encoding = Literal["onehot", "ordinal", "thermometer"]
ConfigFeatures = Callable[[Config], Sequence[float]]
ENCODINGS: tuple[Encoding, ...] = ("onehot", "ordinal", "thermometer")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _group_totals(space: SearchSpace) -> dict[str, list[int]]:
    """Numeric genes named `<group>.<…>.<kind>` grouped as `<group>.<kind>` (e.g. `s0.kernel`)."""
    groups: dict[str, list[int]] = {}
    for i, gene in enumerate(space.genes):
        parts = gene.name.split(".")
        if len(parts) >= 3 and all(_is_number(c) for c in gene.choices):
            groups.setdefault(f"{parts[0]}.{parts[-1]}", []).append(i)
    return {name: idx for name, idx in groups.items() if len(idx) > 1}


class ConfigEncoder:
    """Turns configs of `space` into a float matrix, one row per config.

    `encoding` is "onehot" (one column per choice), "ordinal" (one column per gene, the choice
    index scaled to (0, 1]) or "thermometer" (per gene an active flag, then `gene>=choice` for
    every choice but the first: a model with non-negative weights on it grows with every step
    up a gene's choices); inactive genes are zero in all three. With `derived=True` it appends,
    for numeric genes named `<group>.<…>.<kind>`, the sum over active genes per `<group>.<kind>`
    (per-stage kernel/expand totals) and the number of active genes. `features(config)` adds
    caller columns (e.g. per-stage MACs), computed on the canonical config. A space whose
    `features(config)` gives columns (a cell space's path encoding) has them after the derived
    columns and before the caller's.
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        encoding: Encoding = "onehot",
        derived: bool = True,
        features: ConfigFeatures | None = None,
    ) -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"unknown encoding {encoding!r}; choose one of {list(ENCODINGS)}")
        self.space = space
        self.encoding: Encoding = encoding
        self.derived = derived
        self.features = features
        self._groups = _group_totals(space) if derived else {}
        self._n_extra: int | None = None
        self._n_space = len(space.features(space.smallest()))  # the space's own features

    def base_feature_names(self) -> list[str]:
        """Names of the gene and derived columns (caller features are named `feature[i]`)."""
        names: list[str] = []
        for gene in self.space.genes:
            if self.encoding == "onehot":
                names.extend(f"{gene.name}={choice}" for choice in gene.choices)
            elif self.encoding == "thermometer":
                names.append(f"{gene.name}:active")
                names.extend(f"{gene.name}>={choice}" for choice in gene.choices[1:])
            else:
                names.append(gene.name)
        if self.derived:
            names.extend(f"total:{group}" for group in self._groups)
            names.append("active_genes")
        names.extend(f"space[{i}]" for i in range(self._n_space))
        return names

    def columns_without_space_features(self) -> list[int] | None:
        """Indices of every column but the space's own features; None when it has none."""
        if not self._n_space:
            return None
        n_base = len(self.base_feature_names())
        first_space = n_base - self._n_space
        n_all = n_base + self.n_caller_features
        return [*range(first_space), *range(n_base, n_all)]

    @property
    def n_caller_features(self) -> int:
        """How many columns `features(config)` adds (0 without it; known after a transform)."""
        return self._n_extra or 0

    def feature_names(self) -> list[str]:
        """All column names; caller features are known only after the first `transform`."""
        extra = [f"feature[{i}]" for i in range(self.n_caller_features)]
        return self.base_feature_names() + extra

    def to_json(self) -> dict[str, Any]:
        """Plain description of the encoding (the `features` callable itself is not stored)."""
        return {
            "encoding": self.encoding,
            "derived": self.derived,
            "caller_features": self._n_extra if self.features is not None else None,
            "n_features": len(self.feature_names()),
        }

    def transform(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Encode configs (invalid ones raise `InvalidConfigError`, a `ValueError`)."""
        if isinstance(configs, Mapping):
            raise ValueError("transform takes a sequence of configs, not a single config")
        rows = [self._encode_one(self.space.canonical(cfg)) for cfg in configs]
        if not rows:
            return np.zeros((0, len(self.feature_names())), dtype=np.float64)
        return np.vstack(rows)

    def _encode_one(self, config: Config) -> np.ndarray:
        mask = self.space.active_mask(config)
        parts = [
            self._encode_gene(g, config[g.name], active)
            for g, active in zip(self.space.genes, mask, strict=True)
        ]
        if self.derived:
            totals = [
                sum(float(config[self.space.genes[i].name]) for i in idx if mask[i])
                for idx in self._groups.values()
            ]
            parts.append(np.array([*totals, float(mask.sum())]))
        if self._n_space:
            parts.append(np.asarray(self.space.features(config), dtype=np.float64).ravel())
        if self.features is not None:
            parts.append(self._caller_features(config))
        return np.concatenate(parts)

    def _encode_gene(self, gene: Gene, value: Any, active: bool) -> np.ndarray:
        index = gene.choices.index(value)
        if self.encoding == "onehot":
            column = np.zeros(len(gene.choices))
            if active:
                column[index] = 1.0
            return column
        if self.encoding == "thermometer":
            steps = np.arange(len(gene.choices))  # [active, >= choice 1, >= choice 2, ...]
            return (steps <= index).astype(float) if active else np.zeros(len(gene.choices))
        return np.array([(index + 1) / len(gene.choices) if active else 0.0])

    def _caller_features(self, config: Config) -> np.ndarray:
        assert self.features is not None
        values = np.asarray(self.features(config), dtype=np.float64).ravel()
        if not np.all(np.isfinite(values)):
            raise ValueError(f"features(config) returned non-finite values {values} for {config}")
        if self._n_extra is None:
            self._n_extra = len(values)
        elif len(values) != self._n_extra:
            raise ValueError(
                f"features(config) returned {len(values)} values, earlier configs gave "
                f"{self._n_extra}; it must return the same number for every config"
            )
        return values
