"""How well a predictor can rank the shipped NAS-Bench-201 table's metrics: a test-retest check.

Where a cell's edge node2<-node1 is `none`, swapping node1 and node2 (edges 1<-0 with 2<-0 and
3<-1 with 3<-2) gives another of the table's 15,625 cells that computes the same network with the
same ops, trained and measured separately. The two rows of such a pair differ only by
measurement noise (and training noise, for accuracy), so

- Kendall tau between the pairs' two values is how well one measurement ranks another of the
  same networks;
- under a bivariate-normal model (Greiner's relation tau = 2/pi arcsin(rho)), a predictor that
  knew each network's noise-free value would rank one measurement at
  `2/pi * arcsin(sqrt(sin(pi/2 * retest_tau)))`: an estimate of the best a predictor can do, not
  a bound (the noise need not be normal);
- beside it, what a predictor does on the same cells: ridge on the one-hot genes, trained on
  every cell but a random half of the pairs and scored on one cell of each held-out pair (mean
  of 5 draws).

Every figure is a table lookup (the same on any machine); no arguments. docs/predictors.md.

    .venv/bin/python -m benchmarks.tabular_ceiling
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import kendalltau
from sklearn.linear_model import Ridge
from sklearn.preprocessing import OneHotEncoder

from benchmarks.tabular_search import NONE_OP, Table


def swapped_pairs(table: Table) -> np.ndarray:
    """Row pairs (i, j), i < j, of cells that are each other with node1 and node2 swapped."""
    pairs = []
    for i, g in enumerate(table.genes):
        if g[2] != NONE_OP:
            continue
        j = table.row((g[1], g[0], g[2], g[3], g[5], g[4]))
        if j > i:
            pairs.append((i, j))
    return np.array(pairs)


def ceiling(retest_tau: float) -> float:
    """Kendall tau of the noise-free value against one measurement, from the retest tau."""
    rho = math.sin(math.pi / 2 * retest_tau)
    return 2 / math.pi * math.asin(math.sqrt(max(rho, 0.0)))


def ridge_on_pair_cells(
    encoded: np.ndarray, pairs: np.ndarray, values: np.ndarray, draws: int = 5
) -> float:
    """Mean tau of ridge on `encoded` rows (one-hot genes) on one cell of each held-out pair,
    trained on the rest."""
    rng = np.random.default_rng(0)
    taus = []
    for _ in range(draws):
        held = pairs[rng.permutation(len(pairs))[: len(pairs) // 2]]
        train = np.ones(len(values), dtype=bool)
        train[held.ravel()] = False
        model = Ridge(alpha=1.0).fit(encoded[train], values[train])
        taus.append(kendalltau(model.predict(encoded[held[:, 0]]), values[held[:, 0]]).statistic)
    return float(np.mean(taus))


def main() -> None:
    table = Table()
    pairs = swapped_pairs(table)
    encoded = OneHotEncoder(sparse_output=False).fit_transform(table.genes)
    print(f"{len(pairs)} pairs of cells computing the same network (node1 and node2 swapped)")
    columns = {"accuracy": table.accuracy}
    columns.update({f"latency@{d}": table.latency[:, k] for k, d in enumerate(table.devices)})
    header = f"{'retest tau':>10} {'equal':>6} {'normal-model':>12} {'ridge, same cells':>18}"
    print(f"{'metric':24} {header}")
    for name, values in columns.items():
        a, b = values[pairs[:, 0]], values[pairs[:, 1]]
        retest = float(kendalltau(a, b).statistic)
        ridge = ridge_on_pair_cells(encoded, pairs, values)
        print(
            f"{name:24} {retest:10.3f} {np.mean(a == b):6.0%} {ceiling(retest):12.3f} {ridge:18.3f}"
        )


if __name__ == "__main__":
    main()
