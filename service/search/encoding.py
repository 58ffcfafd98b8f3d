"""Configs as integer gene-index rows: vectorised canonicalisation, row keys, space-filling samples.

A row of gene indices is what pymoo searches over; `canonical_rows` resets inactive genes to index 0
(the same rule as `SearchSpace.canonical`), so a row's bytes identify the network like its hash.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
from pymoo.operators.sampling.lhs import sampling_lhs

from service.supernets.space import Config, SearchSpace


class SpaceEncoding:
    """Index-row view of a `SearchSpace`, with the parent links resolved once."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.n_choices = space.n_choices
        names = space.names
        self._links: list[tuple[int, int, np.ndarray]] = []
        for g, gene in enumerate(space.genes):
            cond = gene.active_when
            if cond is None:
                continue
            parent = names.index(cond.gene)
            choices = space.genes[parent].choices
            reaches = np.array([_at_least(value, cond.at_least) for value in choices], dtype=bool)
            self._links.append((g, parent, reaches))

    def canonical_rows(self, X: np.ndarray) -> np.ndarray:
        """Rounded, clipped, canonical index rows (inactive genes set to index 0)."""
        rows = np.clip(np.rint(np.asarray(X, dtype=float)), 0, self.n_choices - 1).astype(np.int64)
        rows = np.atleast_2d(rows)
        rows[~self.active(rows)] = 0
        return rows

    def active(self, rows: np.ndarray) -> np.ndarray:
        """Which genes are active in each index row (the vectorised `SearchSpace.active_mask`)."""
        active = np.ones(rows.shape, dtype=bool)
        for g, parent, reaches in self._links:
            active[:, g] = active[:, parent] & reaches[rows[:, parent]]
        return active

    def row_of(self, config: Config) -> np.ndarray:
        return self.canonical_rows(self.space.to_indices(config)[None, :])[0]

    def config_of(self, row: np.ndarray) -> Config:
        return self.space.canonical(self.space.from_indices(row))

    def latin_hypercube(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n canonical rows from a maximin Latin hypercube over gene indices (pymoo's LHS)."""
        if n <= 0:
            return np.zeros((0, len(self.n_choices)), dtype=np.int64)
        unit = sampling_lhs(n, len(self.n_choices), random_state=rng)
        return self.canonical_rows(np.floor(unit * self.n_choices))

    def fresh_rows(
        self,
        n: int,
        rng: np.random.Generator,
        exclude: Collection[bytes],
        max_rounds: int = 20,
    ) -> np.ndarray:
        """Up to n space-filling canonical rows whose keys are not in `exclude` nor repeated."""
        taken: set[bytes] = set()
        out: list[np.ndarray] = []
        for _ in range(max_rounds):
            if len(out) >= n:
                break
            for row in self.latin_hypercube(n - len(out), rng):
                key = row_key(row)
                if key not in exclude and key not in taken:
                    taken.add(key)
                    out.append(row)
        if not out:
            return np.zeros((0, len(self.n_choices)), dtype=np.int64)
        return np.stack(out[:n])


def row_key(row: np.ndarray) -> bytes:
    return np.ascontiguousarray(row, dtype=np.int64).tobytes()


def row_keys(rows: np.ndarray | Sequence[np.ndarray]) -> list[bytes]:
    return [row_key(r) for r in rows]


def _at_least(value: object, threshold: int | float) -> bool:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value >= threshold
    raise ValueError(
        f"gene value {value!r} is a parent of another gene, so it must be a number to compare "
        f"with at_least={threshold}"
    )


def design_matrix(encoding: SpaceEncoding, rows: np.ndarray) -> np.ndarray:
    """[1, one-hot of each active gene's choice, active flag per gene] for canonical rows.

    Any encoding that is a sum of per-gene terms over active genes (one-hot, ordinal, per-group
    totals, active-gene count) is a linear function of these columns.
    """
    rows = np.atleast_2d(rows)
    active = encoding.active(rows)
    blocks = [np.ones((len(rows), 1))]
    for g, k in enumerate(encoding.n_choices):
        onehot = np.zeros((len(rows), int(k)))
        onehot[np.arange(len(rows)), rows[:, g]] = 1.0
        blocks.append(onehot * active[:, g : g + 1])
    blocks.append(active.astype(float))
    return np.hstack(blocks)
