"""Search spaces: named genes with finite ordered choices, canonical configs and their hashes.

A gene may be inactive for some configs (a block beyond its stage's depth). Canonicalisation resets
inactive genes to their first choice, so two configs that build the same network share one hash and
the search never validates the same network twice.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

GeneValue = int | float | str
Config = dict[str, GeneValue]


class InvalidConfigError(ValueError):
    """A config names an unknown gene, misses one, or gives a value outside a gene's choices."""


@dataclass(frozen=True)
class ActiveWhen:
    """A gene is active only while `gene`'s value is at least `at_least` (e.g. depth ≥ 3)."""

    gene: str
    at_least: int | float


@dataclass(frozen=True)
class Gene:
    name: str
    choices: tuple[GeneValue, ...]
    active_when: ActiveWhen | None = None

    def __post_init__(self) -> None:
        if not self.choices:
            raise ValueError(f"gene {self.name!r} has no choices")
        if len(set(self.choices)) != len(self.choices):
            raise ValueError(f"gene {self.name!r} has repeated choices {self.choices}")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "choices": list(self.choices)}
        if self.active_when is not None:
            out["active_when"] = {
                "gene": self.active_when.gene,
                "at_least": self.active_when.at_least,
            }
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Gene:
        cond = data.get("active_when")
        return cls(
            name=str(data["name"]),
            choices=tuple(data["choices"]),
            active_when=ActiveWhen(str(cond["gene"]), cond["at_least"]) if cond else None,
        )


@dataclass(frozen=True)
class SearchSpace:
    genes: tuple[Gene, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {g.name: i for i, g in enumerate(self.genes)}
        if len(index) != len(self.genes):
            raise ValueError("gene names must be unique")
        for gene in self.genes:
            cond = gene.active_when
            if cond is not None and index.get(cond.gene, len(self.genes)) >= index[gene.name]:
                raise ValueError(
                    f"gene {gene.name!r} depends on {cond.gene!r}, which must be an earlier gene"
                )
        object.__setattr__(self, "_index", index)

    @property
    def names(self) -> list[str]:
        return [g.name for g in self.genes]

    @property
    def n_choices(self) -> np.ndarray:
        return np.array([len(g.choices) for g in self.genes], dtype=np.int64)

    def gene(self, name: str) -> Gene:
        return self.genes[self._index[name]]

    def validate(self, config: Mapping[str, Any]) -> Config:
        """Return the config as a plain dict, or raise naming the offending gene and its choices."""
        unknown = sorted(set(config) - set(self._index))
        if unknown:
            raise InvalidConfigError(
                f"unknown gene(s) {unknown}; this space's genes are {self.names}"
            )
        missing = [name for name in self.names if name not in config]
        if missing:
            first = self.gene(missing[0])
            raise InvalidConfigError(
                f"missing gene(s) {missing}; e.g. {first.name!r} takes one of {list(first.choices)}"
            )
        out: Config = {}
        for gene in self.genes:
            value = config[gene.name]
            if isinstance(value, bool) or value not in gene.choices:
                raise InvalidConfigError(
                    f"gene {gene.name!r} has value {value!r}; allowed values are "
                    f"{list(gene.choices)}"
                )
            out[gene.name] = gene.choices[gene.choices.index(value)]
        return out

    def is_active(self, config: Mapping[str, Any], name: str) -> bool:
        cond = self.gene(name).active_when
        if cond is None:
            return True
        return self.is_active(config, cond.gene) and config[cond.gene] >= cond.at_least

    def active_mask(self, config: Mapping[str, Any]) -> np.ndarray:
        return np.array([self.is_active(config, n) for n in self.names], dtype=bool)

    def canonical(self, config: Mapping[str, Any]) -> Config:
        """Validate, then reset every inactive gene to its first choice."""
        valid = self.validate(config)
        return {
            g.name: valid[g.name] if self.is_active(valid, g.name) else g.choices[0]
            for g in self.genes
        }

    def features(self, config: Mapping[str, Any]) -> Sequence[float]:
        """Predictor features of a canonical config beyond its genes; none by default.

        A family that knows how its genes build a network overrides this in a `SearchSpace`
        subclass (a cell space: which input→output paths exist and the ops along them). The
        predictors append these columns after the gene encoding; every config must give the
        same number of finite values."""
        return ()

    def config_hash(self, config: Mapping[str, Any]) -> str:
        canonical = self.canonical(config)
        payload = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:32]

    def to_indices(self, config: Mapping[str, Any]) -> np.ndarray:
        valid = self.validate(config)
        return np.array(
            [g.choices.index(valid[g.name]) for g in self.genes],
            dtype=np.int64,
        )

    def from_indices(self, indices: Sequence[int] | np.ndarray) -> Config:
        if len(indices) != len(self.genes):
            raise InvalidConfigError(f"expected {len(self.genes)} gene indices, got {len(indices)}")
        out: Config = {}
        for gene, i in zip(self.genes, indices, strict=True):
            j = int(i)
            if not 0 <= j < len(gene.choices):
                raise InvalidConfigError(
                    f"gene {gene.name!r} index {j} is outside 0..{len(gene.choices) - 1}"
                )
            out[gene.name] = gene.choices[j]
        return out

    def sample(self, rng: np.random.Generator, n: int) -> list[Config]:
        """Uniform random configs (not deduplicated)."""
        idx = np.stack([rng.integers(0, k, size=n) for k in self.n_choices], axis=1)
        return [self.canonical(self.from_indices(row)) for row in idx]

    def smallest(self) -> Config:
        return self.canonical({g.name: g.choices[0] for g in self.genes})

    def largest(self) -> Config:
        return self.canonical({g.name: g.choices[-1] for g in self.genes})

    def log10_size(self) -> float:
        """log10 of the number of distinct networks (canonical configs), counted exactly."""
        return math.log10(self.count_distinct())

    def count_distinct(self) -> int:
        """Count canonical configs by enumerating the values of genes others depend on."""
        parents = [
            g
            for g in self.genes
            if any(h.active_when and h.active_when.gene == g.name for h in self.genes)
        ]
        total = 0
        for combo in _product(parents):
            partial = dict(combo)
            count = 1
            for gene in self.genes:
                if gene.name in partial:
                    continue
                if self._active_partial(partial, gene):
                    count *= len(gene.choices)
            if all(
                self._active_partial(partial, g) or g.choices[0] == partial[g.name] for g in parents
            ):
                total += count
        return total

    def _active_partial(self, partial: Mapping[str, Any], gene: Gene) -> bool:
        cond = gene.active_when
        if cond is None:
            return True
        return self._active_partial(partial, self.gene(cond.gene)) and (
            partial[cond.gene] >= cond.at_least
        )

    def to_json(self) -> list[dict[str, Any]]:
        return [g.to_json() for g in self.genes]

    @classmethod
    def from_json(cls, data: Iterable[Mapping[str, Any]]) -> SearchSpace:
        return cls(tuple(Gene.from_json(g) for g in data))


def _product(genes: Sequence[Gene]) -> Iterable[list[tuple[str, GeneValue]]]:
    if not genes:
        yield []
        return
    head, *rest = genes
    for value in head.choices:
        for tail in _product(rest):
            yield [(head.name, value), *tail]
