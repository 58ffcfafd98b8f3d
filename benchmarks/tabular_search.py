"""Search efficiency on real measurements: NAS-Bench-201 CIFAR-10 accuracy vs latency on 6 devices.

The table (`benchmarks/data/nb201_cifar10_latency.npz`, see its README: accuracies from NATS-Bench,
latencies from HW-NAS-Bench and HELP) holds every one of the 15,625 cells, so a validation is a
lookup and the exact Pareto front of every device is known. Objectives: accuracy (max) and latency
on one device (min). Tactics: the engine's `linas`, `evolutionary` (NSGA-II on validations) and
`random` through `run_search`, on a benchmark-local search space built from the NB201 cell (6 edges
× 5 ops; it gives the predictors the cell's path encoding through `SearchSpace.features`), and
`dynast_linas`, DyNAS-T's LINAS as its source does it, written here (see `dynast_linas`).

Hypervolume: a fixed box per device, accuracy from the table's lower quartile to its maximum and
latency from its minimum to its median, both scaled to [0, 1] with reference point (1, 1); reported
as a fraction of HV*, the exact hypervolume of the whole table's front.

    .venv/bin/python -m benchmarks.tabular_search [--seeds 0,1,2,3,4] [--budget 300]
        [--devices all] [--tactics linas,evolutionary,random,dynast_linas] [--jobs 2]
        [--predictors ...] [--out benchmarks/data/tabular_search.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parent / "data" / "nb201_cifar10_latency.npz"
DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "tabular_search.json"
TACTICS = ("linas", "evolutionary", "random", "dynast_linas")
CHECKPOINTS = (50, 100, 150, 200, 250, 300)
TARGET_BUDGET = 250
ISSUE_TARGET_VALIDATIONS = 100
# NB201 edge order: node1<-0, node2<-0, node2<-1, node3<-0, node3<-1, node3<-2.
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
PATHS = ((3,), (0, 4), (1, 5), (0, 2, 5))  # every input->output path, as edge indices
NONE_OP = 0
CONV_OPS = (2, 3)  # nor_conv_1x1, nor_conv_3x3


# -- the table ------------------------------------------------------------------------------------


class Table:
    """The NB201 table: genes (op index per edge), accuracy, latency per device."""

    def __init__(self, path: Path = DATA) -> None:
        data = np.load(path)
        self.genes = data["genes"].astype(np.int64)
        self.ops = [str(o) for o in data["ops"]]
        self.accuracy = data["cifar10_test_accuracy"].astype(float)
        self.latency = data["latency_ms"].astype(float)
        self.devices = [str(d) for d in data["devices"]]
        self.index = {tuple(int(v) for v in g): i for i, g in enumerate(self.genes)}

    def row(self, genes: Sequence[int]) -> int:
        return self.index[tuple(int(v) for v in genes)]

    def box(self, device: int) -> tuple[tuple[float, float], tuple[float, float]]:
        """(accuracy low, high), (latency low, high) of the fixed hypervolume box."""
        lat = self.latency[:, device]
        acc_box = (float(np.percentile(self.accuracy, 25)), float(self.accuracy.max()))
        return acc_box, (float(lat.min()), float(np.median(lat)))

    def normalised(self, device: int, rows: Sequence[int]) -> np.ndarray:
        """Minimisation points in the unit box (1 = the reference point) for table rows."""
        (a_lo, a_hi), (l_lo, l_hi) = self.box(device)
        idx = np.asarray(rows, dtype=int)
        f1 = (a_hi - self.accuracy[idx]) / (a_hi - a_lo)
        f2 = (self.latency[idx, device] - l_lo) / (l_hi - l_lo)
        return np.column_stack([f1, f2])

    def hv_star(self, device: int) -> float:
        return hypervolume_2d(self.normalised(device, range(len(self.genes))))


def hypervolume_2d(points: np.ndarray, reference: tuple[float, float] = (1.0, 1.0)) -> float:
    """Exact 2-D hypervolume (minimisation) of the points dominating `reference`."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    pts = pts[(pts[:, 0] < reference[0]) & (pts[:, 1] < reference[1])]
    if len(pts) == 0:
        return 0.0
    pts = pts[np.lexsort((pts[:, 1], pts[:, 0]))]
    # Sweep: sort by x, keep the running minimum of y; each non-dominated point adds a slab.
    volume, best_y = 0.0, reference[1]
    front: list[tuple[float, float]] = []
    for x, y in pts:
        if y < best_y:
            front.append((x, y))
            best_y = y
    for (x, y), nxt in zip(front, [*front[1:], (reference[0], 0.0)], strict=True):
        volume += (nxt[0] - x) * (reference[1] - y)
    return float(volume)


# -- the benchmark-local search space -------------------------------------------------------------


def live_edges(genes: Sequence[int]) -> list[bool]:
    """Edges on some input->output path of non-`none` edges (the rest do not change the network)."""
    on = [g != NONE_OP for g in genes]
    reach_fwd = {0}
    for e, (s, t) in enumerate(EDGES):
        if on[e] and s in reach_fwd:
            reach_fwd.add(t)
    reach_bwd = {3}
    for e in reversed(range(len(EDGES))):
        s, t = EDGES[e]
        if on[e] and t in reach_bwd:
            reach_bwd.add(s)
    return [on[e] and s in reach_fwd and t in reach_bwd for e, (s, t) in enumerate(EDGES)]


@cache
def cell_features(genes: tuple[int, ...]) -> tuple[float, ...]:
    """Path encoding (which input->output paths exist, with which ops along them: 100 columns),
    the count of each op on live edges (4) and path summaries (connected, most and fewest
    convolutions on a path, number of paths)."""
    columns: list[float] = []
    convs_per_path: list[int] = []
    for path in PATHS:
        ops = [genes[e] for e in path]
        exists = all(o != NONE_OP for o in ops)
        if exists:
            convs_per_path.append(sum(o in CONV_OPS for o in ops))
        for choice in itertools.product(range(1, 5), repeat=len(path)):
            columns.append(float(exists and tuple(ops) == choice))
    live = live_edges(genes)
    columns += [
        float(sum(lv and g == op for g, lv in zip(genes, live, strict=True))) for op in range(1, 5)
    ]
    if convs_per_path:
        columns += [
            1.0,
            float(max(convs_per_path)),
            float(min(convs_per_path)),
            float(len(convs_per_path)),
        ]
    else:
        columns += [0.0, 0.0, 0.0, 0.0]
    return tuple(columns)


def make_space(ops: Sequence[str]) -> Any:
    """A `SearchSpace` of the NB201 cell: one gene per edge, the op names as choices."""
    from service.supernets.space import Gene, SearchSpace

    class CellSpace(SearchSpace):
        """NB201 cell space; `features` is the cell's path encoding and op counts."""

        def features(self, config: Mapping[str, Any]) -> Sequence[float]:
            genes = tuple(int(i) for i in self.to_indices(config))
            return cell_features(genes)

    genes = tuple(Gene(f"edge{e}.{s}to{t}", tuple(ops)) for e, (s, t) in enumerate(EDGES))
    return CellSpace(genes)


# -- one run of one tactic ----------------------------------------------------------------------


def engine_run(
    table: Table, device: int, tactic: str, seed: int, budget: int, predictors: Sequence[str] | None
) -> tuple[list[int], dict[str, Any]]:
    """Validated table rows in order, through the engine's `run_search`; plus timing."""
    from service.search import SearchSpec, parse_objective, run_search

    space = make_space(table.ops)
    metric = f"latency@{table.devices[device]}"
    (a_lo, a_hi), (l_lo, l_hi) = table.box(device)
    extra: dict[str, Any] = {"predictors": tuple(predictors)} if predictors else {}
    spec = SearchSpec(
        objectives=[parse_objective("accuracy:max"), parse_objective(f"{metric}:min")],
        budget=budget,
        tactic=tactic,  # type: ignore[arg-type]
        seed=seed,
        hv_bounds={"accuracy": (a_lo, a_hi), metric: (l_lo, l_hi)},
        **extra,
    )
    rows: list[int] = []

    def validate(configs: list[dict[str, Any]]) -> list[dict[str, float]]:
        out = []
        for config in configs:
            r = table.row(space.to_indices(config))
            rows.append(r)
            out.append({"accuracy": table.accuracy[r], metric: table.latency[r, device]})
        return out

    started = time.process_time()
    engine = run_search(space, spec, validate)
    cpu = time.process_time() - started
    linas_iterations = [it.cpu_seconds for it in engine.iterations if it.predictor_scores]
    info = {
        "cpu_seconds": round(cpu, 2),
        "max_iteration_cpu_seconds": round(max(linas_iterations), 3) if linas_iterations else None,
        "median_iteration_cpu_seconds": (
            round(statistics.median(linas_iterations), 3) if linas_iterations else None
        ),
    }
    return rows, info


class _OneHot:
    """DyNAS-T's one-hot of the genes (one column per choice of each gene)."""

    def __init__(self, n_choices: int, n_genes: int) -> None:
        self.k, self.n = n_choices, n_genes

    def __call__(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=int).reshape(-1, self.n)
        out = np.zeros((len(X), self.n * self.k))
        for g in range(self.n):
            out[np.arange(len(X)), g * self.k + X[:, g]] = 1.0
        return out


class _DynastPredictor:
    """DyNAS-T's predictor: Ridge (alpha 0.1..10 by 0.1) and RBF SVR (C 1..100 by 1, gamma 'auto',
    epsilon 0) each tuned by 5-fold grid search on negative MAPE (what its `GridSearchCV` does:
    unshuffled folds, mean fold score, first best on ties, refit on all), over labels scaled by
    a power of ten; the one with the better best score predicts. The grid is looped here rather
    than through `GridSearchCV` only to skip its per-fit overhead."""

    ALPHAS = np.arange(0.1, 10.1, 0.1)
    COSTS = np.arange(1.0, 101.0, 1.0)

    def __init__(self) -> None:
        self.model: Any = None
        self.factor = 1.0

    def fit(self, X: np.ndarray, y: np.ndarray) -> _DynastPredictor:
        from sklearn.linear_model import Ridge
        from sklearn.metrics import mean_absolute_percentage_error
        from sklearn.model_selection import KFold
        from sklearn.svm import SVR

        top = float(np.max(np.abs(y)))
        self.factor = 10 ** (np.floor(np.log10(top)) - 1.0) if top > 0 else 1.0
        target = y / self.factor
        folds = list(KFold(5).split(X))
        makers = [
            [lambda a=a: Ridge(alpha=a, max_iter=1_000_000) for a in self.ALPHAS],
            [
                lambda c=c: SVR(kernel="rbf", gamma="auto", epsilon=0.0, C=c, max_iter=1_000_000)
                for c in self.COSTS
            ],
        ]
        best_scores, best_makers = [], []
        for grid in makers:
            scores = [
                np.mean(
                    [
                        -mean_absolute_percentage_error(
                            target[test], make().fit(X[train], target[train]).predict(X[test])
                        )
                        for train, test in folds
                    ]
                )
                for make in grid
            ]
            i = int(np.argmax(scores))
            best_scores.append(scores[i])
            best_makers.append(grid[i])
        self.model = best_makers[int(np.argmax(best_scores))]().fit(X, target)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict(X) * self.factor


def dynast_linas(
    table: Table,
    device: int,
    seed: int,
    budget: int,
    population: int = 50,
    inner_evals: int = 20_000,
) -> tuple[list[int], dict[str, Any]]:
    """DyNAS-T's LINAS (IntelLabs/DyNAS-T, `dynast/search/search_tactic.py`, read, not copied):
    `population` uniform random networks, then round(budget / population) loops of: validate the
    latest population (no de-duplication: a repeat is validated again), fit one predictor per
    objective on every validation so far (one-hot genes), run NSGA-II on the predictors
    (population 50, inner_evals / 50 generations, integer random sampling, SBX 0.9/15, PM
    0.02/20, rounding repair, duplicates eliminated, the same seed every loop), and take its
    final population as the next one. Returns the validated table rows in order."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.problem import Problem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling
    from pymoo.optimize import minimize

    n_genes, k = table.genes.shape[1], len(table.ops)
    onehot = _OneHot(k, n_genes)
    rng = np.random.default_rng(seed)
    latest = rng.integers(0, k, size=(population, n_genes))
    rows: list[int] = []
    started = time.process_time()
    for _ in range(round(budget / population)):
        rows += [table.row(g) for g in latest]
        X = onehot(table.genes[rows])
        models = [
            _DynastPredictor().fit(X, table.accuracy[rows]),
            _DynastPredictor().fit(X, table.latency[rows, device]),
        ]

        class Predicted(Problem):
            def __init__(self, predictors: list[_DynastPredictor]) -> None:
                super().__init__(n_var=n_genes, n_obj=2, xl=0, xu=k - 1, vtype=int)
                self.predictors = predictors

            def _evaluate(self, x: np.ndarray, out: dict[str, Any], *a: Any, **kw: Any) -> None:
                features = onehot(np.rint(x))
                accuracy, latency = (p.predict(features) for p in self.predictors)
                out["F"] = np.column_stack([-accuracy, latency])

        algorithm = NSGA2(
            pop_size=50,
            sampling=IntegerRandomSampling(),
            crossover=SBX(prob=0.9, eta=15.0, vtype=float, repair=RoundingRepair()),
            mutation=PM(prob=0.02, eta=20.0, vtype=float, repair=RoundingRepair()),
            eliminate_duplicates=True,
        )
        result = minimize(Predicted(models), algorithm, ("n_gen", inner_evals // 50), seed=seed)
        latest = np.rint(result.pop.get("X")).astype(int)
    return rows[:budget], {"cpu_seconds": round(time.process_time() - started, 2)}


def random_rows(table: Table, seed: int, budget: int) -> list[int]:
    """Not used by default (the engine's `random` tactic is the baseline); for tests."""
    rng = np.random.default_rng(seed)
    return [int(r) for r in rng.choice(len(table.genes), budget, replace=False)]


# -- the sweep ------------------------------------------------------------------------------------


def curve(
    table: Table, device: int, rows: Sequence[int], checkpoints: Sequence[int]
) -> list[float]:
    """HV / HV* after the first n validations, for each n in checkpoints (and every n ≤ budget)."""
    star = table.hv_star(device)
    points = table.normalised(device, rows)
    return [hypervolume_2d(points[:n]) / star for n in checkpoints]


def one_run(args: tuple[int, str, int, int, tuple[str, ...] | None]) -> dict[str, Any]:
    device, tactic, seed, budget, predictors = args
    warnings.simplefilter("ignore")
    table = _table()
    started = time.perf_counter()
    if tactic == "dynast_linas":
        rows, info = dynast_linas(table, device, seed, budget)
    else:
        rows, info = engine_run(table, device, tactic, seed, budget, predictors)
    every = list(range(1, len(rows) + 1))
    return {
        "device": table.devices[device],
        "tactic": tactic,
        "seed": seed,
        "hv_fraction": [round(v, 6) for v in curve(table, device, rows, every)],
        "validations": len(rows),
        "distinct": len({tuple(table.genes[r]) for r in rows}),
        "wall_seconds": round(time.perf_counter() - started, 2),
        **info,
    }


@lru_cache(maxsize=1)
def _table() -> Table:
    return Table()


def needed(curve_values: Sequence[float], target: float) -> int | None:
    """Validations a run needs to reach `target` HV fraction (None if never)."""
    for n, value in enumerate(curve_values, start=1):
        if value >= target - 1e-12:
            return n
    return None


def median_curve(runs: Sequence[Mapping[str, Any]], budget: int) -> list[float]:
    """Median over seeds of HV fraction after n validations, n = 1..budget."""
    padded = [
        list(r["hv_fraction"]) + [r["hv_fraction"][-1]] * (budget - len(r["hv_fraction"]))
        for r in runs
    ]
    return [float(statistics.median(col)) for col in zip(*padded, strict=True)]


def median_needed(runs: Sequence[Mapping[str, Any]], target: float, budget: int) -> float | None:
    """Median over seeds of validations to reach target (a run that never does counts as more
    than the budget)."""
    counts = [needed(r["hv_fraction"], target) for r in runs]
    values = [c if c is not None else budget + 1 for c in counts]
    m = statistics.median(values)
    return None if m > budget else float(m)


def summarise(results: Sequence[Mapping[str, Any]], budget: int) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    devices = sorted({r["device"] for r in results}, key=[r["device"] for r in results].index)
    checkpoints = [c for c in CHECKPOINTS if c <= budget]
    target_n = min(TARGET_BUDGET, budget)
    for device in devices:
        by_tactic = {}
        for tactic in TACTICS:
            runs = [r for r in results if r["device"] == device and r["tactic"] == tactic]
            if runs:
                by_tactic[tactic] = runs
        medians = {t: median_curve(runs, budget) for t, runs in by_tactic.items()}
        targets = {
            name: medians[name][target_n - 1]
            for name in ("evolutionary", "dynast_linas")
            if name in medians
        }
        summary[device] = {
            "median_hv_fraction": {
                t: {str(c): round(m[c - 1], 4) for c in checkpoints} for t, m in medians.items()
            },
            "targets": {f"{name}@{target_n}": round(v, 4) for name, v in targets.items()},
            "median_validations_to_reach": {
                t: {
                    f"{name}@{target_n}": median_needed(runs, v, budget)
                    for name, v in targets.items()
                }
                for t, runs in by_tactic.items()
            },
            # the spread over seeds behind the medians (issue 22: distributions, not one run)
            "hv_fraction_range": {
                t: {str(c): _range(runs, c, budget) for c in checkpoints}
                for t, runs in by_tactic.items()
            },
            "validations_to_reach_per_seed": {
                t: {
                    f"{name}@{target_n}": [needed(r["hv_fraction"], v) for r in runs]
                    for name, v in targets.items()
                }
                for t, runs in by_tactic.items()
            },
        }
    return summary


def _range(runs: Sequence[Mapping[str, Any]], checkpoint: int, budget: int) -> list[float]:
    """[min, max] over seeds of the HV fraction after `checkpoint` validations."""
    values = [median_curve([r], budget)[checkpoint - 1] for r in runs]
    return [round(min(values), 4), round(max(values), 4)]


def check_targets(summary: Mapping[str, Any], budget: int) -> dict[str, Any]:
    """The issue's 'done when' per device: LINAS reaches both targets in ≤ 100 validations and its
    median HV is ≥ NSGA-II's and ≥ random's at every checkpoint."""
    out = {}
    for device, s in summary.items():
        hv = s["median_hv_fraction"]
        reach = s["median_validations_to_reach"].get("linas", {})
        checks: dict[str, bool] = {}
        for name, n in reach.items():
            checks[f"reach {name} in <= {ISSUE_TARGET_VALIDATIONS}"] = (
                n is not None and n <= ISSUE_TARGET_VALIDATIONS
            )
        for other in ("evolutionary", "random"):
            if "linas" in hv and other in hv:
                checks[f">= {other} at every checkpoint"] = all(
                    hv["linas"][c] >= hv[other][c] for c in hv["linas"]
                )
        out[device] = checks
    return out


def print_table(summary: Mapping[str, Any], budget: int) -> None:
    checkpoints = [c for c in CHECKPOINTS if c <= budget]
    for device, s in summary.items():
        print(f"\n## {device}   (targets: {s['targets']})")
        targets = list(s["targets"])
        header = " ".join(f"{'HV@' + str(c):>7}" for c in checkpoints)
        reach = " ".join(f"{'to ' + t.split('@')[0][:9]:>12}" for t in targets)
        print(f"{'tactic':<14}{header}  {reach}")
        for tactic, values in s["median_hv_fraction"].items():
            row = " ".join(f"{values[str(c)]:7.4f}" for c in checkpoints)
            counts = s["median_validations_to_reach"][tactic]
            cells = " ".join(
                f"{'>' + str(budget) if counts[t] is None else f'{counts[t]:g}':>12}"
                for t in targets
            )
            print(f"{tactic:<14}{row}  {cells}")
        for tactic, ranges in s["hv_fraction_range"].items():
            if not checkpoints:  # a budget below the first checkpoint
                break
            per_seed = s["validations_to_reach_per_seed"][tactic]
            reach_seeds = "; ".join(
                f"to {t.split('@')[0]}: "
                + ", ".join(f">{budget}" if n is None else str(n) for n in per_seed[t])
                for t in targets
            )
            print(
                f"  {tactic}: HV@{checkpoints[-1]} over seeds "
                f"[{ranges[str(checkpoints[-1])][0]:.4f}-{ranges[str(checkpoints[-1])][1]:.4f}]"
                f"; per seed {reach_seeds}"
            )


def _reusable(path: Path | None, budget: int) -> dict[tuple[str, str, int], dict[str, Any]]:
    """dynast_linas runs of a previous output with the same budget, by (device, tactic, seed)."""
    if path is None or not path.exists():
        return {}
    if path.suffix == ".jsonl":  # the partial log of a run that was stopped
        runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    else:
        data = json.loads(path.read_text())
        runs = data.get("runs", []) if data.get("budget") == budget else []
    return {
        (r["device"], r["tactic"], r["seed"]): r
        for r in runs
        if r["tactic"] == "dynast_linas" and r["validations"] == budget
    }


def _load_runs(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return list(json.loads(path.read_text())["runs"])


def _summarise_only(table: Table, paths: Sequence[Path], budget: int, out: Path) -> int:
    """Table and JSON from runs already made (e.g. a sweep stopped part-way: its partial log)."""
    runs = {(r["device"], r["tactic"], r["seed"]): r for p in paths for r in _load_runs(p)}
    results = [r for r in runs.values() if r["validations"] == budget]
    summary = summarise(results, budget)
    checks = check_targets(summary, budget)
    print_table(summary, budget)
    seeds_per = {
        f"{d}/{t}": sorted(r["seed"] for r in results if (r["device"], r["tactic"]) == (d, t))
        for d, t in sorted({(r["device"], r["tactic"]) for r in results})
    }
    print("\nseeds per device/tactic:", json.dumps(seeds_per))
    print("\nissue targets per device:")
    for device, c in checks.items():
        print(f"  {device}: " + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in c.items()))
    from benchmarks.environment import library_versions

    payload = {
        "command": "python -m benchmarks.tabular_search --from-runs "
        + " ".join(str(p) for p in paths),
        "budget": budget,
        "seeds_per_device_tactic": seeds_per,
        "hv_star": {d: table.hv_star(i) for i, d in enumerate(table.devices)},
        "summary": summary,
        "targets_met": checks,
        "versions": library_versions(),
        "runs": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--devices", default="all", help="comma-separated device names, or all")
    parser.add_argument("--tactics", default=",".join(TACTICS))
    parser.add_argument("--predictors", default=None, help="LINAS candidates (default: engine's)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--reuse",
        type=Path,
        default=None,
        help="a previous JSON whose dynast_linas runs (same device, seed, budget) are reused: "
        "DyNAS-T's predictors take ~2 min CPU per run and do not depend on this engine",
    )
    parser.add_argument(
        "--from-runs",
        type=Path,
        nargs="+",
        default=None,
        help="summarise finished runs only (JSON outputs or .partial.jsonl logs); runs nothing",
    )
    args = parser.parse_args(argv)

    table = _table()
    if args.from_runs:
        return _summarise_only(table, args.from_runs, args.budget, args.out)
    seeds = [int(s) for s in args.seeds.split(",")]
    devices = (
        list(range(len(table.devices)))
        if args.devices == "all"
        else [table.devices.index(d) for d in args.devices.split(",")]
    )
    tactics = args.tactics.split(",")
    unknown = [t for t in tactics if t not in TACTICS]
    if unknown:
        parser.error(f"unknown tactic(s) {unknown}; choose from {list(TACTICS)}")
    predictors = tuple(args.predictors.split(",")) if args.predictors else None
    jobs = [(d, t, s, args.budget, predictors) for d in devices for t in tactics for s in seeds]
    reused = _reusable(args.reuse, args.budget)
    kept = [
        reused[(table.devices[d], t, s)]
        for d, t, s, *_ in jobs
        if (table.devices[d], t, s) in reused
    ]
    jobs = [j for j in jobs if (table.devices[j[0]], j[1], j[2]) not in reused]
    started = time.perf_counter()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    partial = args.out.with_suffix(".partial.jsonl")  # each run as it finishes (resumable)
    partial.parent.mkdir(parents=True, exist_ok=True)
    results = []
    with partial.open("a") as log:
        if args.jobs > 1:
            with ProcessPoolExecutor(args.jobs) as pool:
                for result in pool.map(one_run, jobs):
                    results.append(result)
                    log.write(json.dumps(result) + "\n")
                    log.flush()
        else:
            for job in jobs:
                results.append(one_run(job))
                log.write(json.dumps(results[-1]) + "\n")
                log.flush()
    results = kept + results
    if kept:
        print(f"reused {len(kept)} dynast_linas runs from {args.reuse}")
    summary = summarise(results, args.budget)
    checks = check_targets(summary, args.budget)
    print_table(summary, args.budget)
    print("\nissue targets per device:")
    for device, c in checks.items():
        print(f"  {device}: " + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in c.items()))
    elapsed = time.perf_counter() - started
    print(f"\n{len(results)} runs in {elapsed:.0f} s wall ({args.jobs} jobs)")
    from benchmarks.environment import library_versions
    from service.search.spec import DEFAULT_PREDICTORS

    payload = {
        "command": "python -m benchmarks.tabular_search "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "data": "benchmarks/data/nb201_cifar10_latency.npz "
        "(NATS-Bench accuracy; HW-NAS-Bench and HELP latency)",
        "budget": args.budget,
        "seeds": seeds,
        "predictors": list(predictors or DEFAULT_PREDICTORS),
        "hv": "fixed box: accuracy [table Q1, max], latency [min, median]; reference (1, 1); "
        "as a fraction of the exact HV* of the whole table",
        "hv_star": {table.devices[d]: table.hv_star(d) for d in devices},
        "summary": summary,
        "targets_met": checks,
        "wall_seconds": round(elapsed, 1),
        "platform": platform.platform(),
        "versions": library_versions(),
        "runs": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
