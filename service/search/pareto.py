"""Objective and constraint matrices, Pareto fronts and normalised hypervolume (pymoo).

Everything is in pymoo's minimisation form: F = value for `min`, F = -value for `max`, and a
constraint is G = (value - bound) / scale for `<=` (bound - value for `>=`), feasible when G <= 0,
with scale = |bound| (1 when the bound is 0), so violations of different metrics compare.
A missing or non-finite metric makes the point infeasible (G = inf).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from service.search.records import Evaluation
from service.search.spec import SearchSpec

MetricColumns = Mapping[str, np.ndarray]


def columns_of(evaluations: Sequence[Evaluation], metrics: Sequence[str]) -> dict[str, np.ndarray]:
    """Metric values as columns; NaN where an evaluation lacks a metric."""
    return {
        m: np.array([e.metrics.get(m, np.nan) for e in evaluations], dtype=float) for m in metrics
    }


def objective_matrix(spec: SearchSpec, columns: MetricColumns) -> np.ndarray:
    """(n, n_objectives) in minimisation form."""
    cols = [
        -columns[o.metric] if o.direction == "max" else columns[o.metric] for o in spec.objectives
    ]
    return np.stack(cols, axis=1).astype(float)


def constraint_matrix(spec: SearchSpec, columns: MetricColumns, n: int) -> np.ndarray:
    """(n, n_constraints + 1) relative violations; the last column flags non-finite objectives."""
    cols = []
    for c in spec.constraints:
        scale = abs(c.value) or 1.0
        diff = columns[c.metric] - c.value if c.op == "<=" else c.value - columns[c.metric]
        cols.append(np.where(np.isfinite(diff), diff / scale, np.inf))
    finite = np.all(np.isfinite(objective_matrix(spec, columns)), axis=1) if n else np.ones(0)
    cols.append(np.where(finite, -1.0, np.inf))
    return np.stack(cols, axis=1) if n else np.zeros((0, len(cols)))


def total_violation(G: np.ndarray) -> np.ndarray:
    return np.maximum(G, 0.0).sum(axis=1)


def non_dominated(F: np.ndarray) -> np.ndarray:
    """Indices of the first non-dominated front of F (all rows assumed comparable)."""
    if len(F) == 0:
        return np.zeros(0, dtype=int)
    front = NonDominatedSorting().do(F, only_non_dominated_front=True)
    return np.asarray(front, dtype=int)


def pareto_indices(F: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Feasible non-dominated rows, sorted by the first objective, duplicates in F kept once."""
    feasible = np.flatnonzero(total_violation(G) <= 0)
    if len(feasible) == 0:
        return feasible
    front = feasible[non_dominated(F[feasible])]
    _, unique = np.unique(F[front], axis=0, return_index=True)
    front = front[np.sort(unique)]
    return front[np.lexsort(F[front].T[::-1])]


@dataclass(frozen=True)
class HypervolumeScale:
    """Maps minimisation-form F to [0, 1] per objective: ideal -> 0, nadir -> 1 = reference point.

    Hypervolume is the dominated fraction of that unit box (a front beyond the ideal can exceed 1).
    """

    ideal: np.ndarray
    nadir: np.ndarray

    @classmethod
    def from_spec(cls, spec: SearchSpec, F_first: np.ndarray) -> HypervolumeScale:
        """`spec.hv_bounds` where given, else the finite range of F in iteration 0 (`F_first`)."""
        ideal, nadir = [], []
        for j, objective in enumerate(spec.objectives):
            bounds = spec.hv_bounds.get(objective.metric)
            if bounds is not None:
                low, high = bounds
                best, worst = (-high, -low) if objective.direction == "max" else (low, high)
            else:
                column = F_first[:, j][np.isfinite(F_first[:, j])] if len(F_first) else []
                best = float(np.min(column)) if len(column) else 0.0
                worst = float(np.max(column)) if len(column) else 1.0
                if worst - best <= 1e-12:
                    worst = best + max(abs(best) * 0.1, 1e-6)
            ideal.append(best)
            nadir.append(worst)
        return cls(np.array(ideal, dtype=float), np.array(nadir, dtype=float))

    def normalise(self, F: np.ndarray) -> np.ndarray:
        return (F - self.ideal) / (self.nadir - self.ideal)

    def hypervolume(self, F: np.ndarray) -> float:
        """HV of the rows of F (assumed feasible) against reference point 1 after normalising."""
        if len(F) == 0:
            return 0.0
        normalised = self.normalise(F)
        inside = normalised[np.all(normalised < 1.0, axis=1)]
        if len(inside) == 0:
            return 0.0
        ref = np.ones(F.shape[1])
        if F.shape[1] == 1:
            return float(1.0 - inside.min())
        return float(HV(ref_point=ref)(inside))

    def to_json(self) -> dict[str, list[float]]:
        return {"ideal": self.ideal.tolist(), "nadir": self.nadir.tolist()}


def constrained_order(F: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Row order best first: feasible rows by non-dominated rank (then first objective),
    infeasible rows after them by total violation."""
    violation = total_violation(G)
    feasible = np.flatnonzero(violation <= 0)
    infeasible = np.flatnonzero(violation > 0)
    ordered: list[int] = []
    if len(feasible):
        for front in NonDominatedSorting().do(F[feasible]):
            members = feasible[np.asarray(front, dtype=int)]
            ordered.extend(members[np.argsort(F[members, 0], kind="stable")].tolist())
    ordered.extend(infeasible[np.argsort(violation[infeasible], kind="stable")].tolist())
    return np.asarray(ordered, dtype=int)
