"""Predictor quality on measured sub-networks: our selected predictor vs DyNAS-T's choice.

For each target (accuracy, latency@host) and training size (50/100/200), the predictors are fitted
on random training sub-networks and scored on the same held-out ones (Kendall τ, MAPE), with their
fit time; repeated over a few seeds. Our contenders:
- `ours`: `fit_predictor`'s default selection on the gene encoding alone;
- `ours+cost`: the same given each network's exact MACs and params (the `features` hook);
- `engine`: exactly what LINAS fits by default (`service.search.surrogate.fit_metric` with the
  engine's default candidates and, as `SearchSpec` defaults to, the exact MACs and params as
  features) — the selection the search uses;
- `ridge-onehot`: LINAS's default until 2026-11-30, ridge on one-hot genes alone (reference).
Prints a table, then JSON.

    .venv/bin/python -m benchmarks.predictor_quality [--data PATH] [--repeats 5]
    .venv/bin/python -m benchmarks.predictor_quality --tabular [--repeats 5] [--out F.json]  (NB201)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import linear_model, svm
from sklearn.model_selection import GridSearchCV
from sklearn.preprocessing import OneHotEncoder
from threadpoolctl import threadpool_limits

from benchmarks.environment import library_versions
from predictors import fit_predictor, rank_quality
from service.evaluation.validation import exact_metrics
from service.search.encoding import SpaceEncoding
from service.search.exact import ExactMetrics
from service.search.spec import DEFAULT_EXACT_FEATURES, DEFAULT_PREDICTORS
from service.search.surrogate import ExactFeatures, fit_metric
from service.supernets.elastic_mbv3 import ArchSpec
from service.supernets.registry import builtin_supernet
from service.supernets.space import Config, SearchSpace

DEFAULT_DATA = Path(__file__).resolve().parent / "data" / "mbv3_digits_random.json"
TARGETS = ("accuracy", "latency@host")
TRAIN_SIZES = (50, 100, 200)
MIN_HELD_OUT = 20
ISSUE_TARGET_TAU = 0.9
ISSUE_TARGET_FIT_SECONDS = 1.0
# The contenders fitted as LINAS fits them (`fit_metric`), by their candidate models;
# `ridge-onehot` is the engine's default until 2026-11-30 (no exact features).
ENGINE_CANDIDATES: dict[str, tuple[str, ...]] = {
    "engine": DEFAULT_PREDICTORS,
    "ridge-onehot": ("ridge",),
}


def load_measurements(path: Path) -> tuple[list[Config], dict[str, np.ndarray]]:
    """Configs and per-target values from a list of {"config": …, "metrics": {…}} records."""
    if not path.exists():
        raise SystemExit(
            f"no measurement file at {path}: it holds accuracy and latency@host of ~400 random "
            "sub-networks of the built-in supernet, as a JSON list of "
            '{"config": {...}, "metrics": {"accuracy": ..., "latency@host": ...}}; '
            "pass another file with --data"
        )
    records = json.loads(path.read_text())
    if isinstance(records, dict) and isinstance(records.get("networks"), dict):
        records = list(records["networks"].values())  # {"networks": {hash: record}} also works
    if not isinstance(records, list) or not records:
        raise SystemExit(f"{path} must hold a non-empty JSON list of records")
    for i, record in enumerate(records):
        missing = [t for t in TARGETS if t not in record.get("metrics", {})]
        if "config" not in record or missing:
            raise SystemExit(f"{path} record {i} lacks 'config' or metrics {missing or ''}")
    configs = [dict(r["config"]) for r in records]
    values = {t: np.array([float(r["metrics"][t]) for r in records]) for t in TARGETS}
    return configs, values


def exact_cost_features(space: SearchSpace) -> ExactFeatures:
    """The engine's `ExactFeatures`: MACs and params from the built-in supernet, as the worker
    computes them (`service.evaluation.validation.exact_metrics`)."""
    supernet = builtin_supernet()
    exact = ExactMetrics(SpaceEncoding(space), lambda config: exact_metrics(supernet, config))
    return ExactFeatures(exact)


class DynastStylePredictor:
    """DyNAS-T's predictor: Ridge and RBF SVR, each grid-searched (5-fold, MAPE), best kept.

    Written after `dynast/predictors/dynamic_predictor.py` (IntelLabs/DyNAS-T): zero-variance
    features dropped, labels scaled by a power of ten, alphas 0.1..10, C 1..100. n_jobs=1 here
    (DyNAS-T uses all cores) so both predictors get the same share of the machine.
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.encoder = OneHotEncoder(
            categories=[list(range(n)) for n in space.n_choices], sparse_output=False
        )

    def _onehot(self, configs: Sequence[Config]) -> np.ndarray:
        indices = np.stack([self.space.to_indices(self.space.canonical(c)) for c in configs])
        return self.encoder.fit_transform(indices)

    def fit(self, configs: Sequence[Config], y: np.ndarray) -> DynastStylePredictor:
        X = self._onehot(configs)
        self.features_ = np.nonzero(np.var(X, axis=0))[0]
        top = np.amax(np.abs(y))
        self.scale_ = 10 ** (np.floor(np.log10(top)) - 1.0) if top > 0 else 1.0
        searchers = [
            GridSearchCV(
                linear_model.Ridge(),
                {"alpha": np.arange(0.1, 10.1, 0.1)},
                scoring="neg_mean_absolute_percentage_error",
            ),
            GridSearchCV(
                svm.SVR(kernel="rbf", gamma="auto", epsilon=0.0),
                {"C": np.arange(1.0, 101.0)},
                scoring="neg_mean_absolute_percentage_error",
            ),
        ]
        for searcher in searchers:
            searcher.fit(X[:, self.features_], y / self.scale_)
        self.best_ = max(searchers, key=lambda s: s.best_score_)
        return self

    @property
    def model_name(self) -> str:
        return type(self.best_.best_estimator_).__name__.lower()

    def predict(self, configs: Sequence[Config]) -> np.ndarray:
        X = self._onehot(configs)[:, self.features_]
        return np.asarray(self.best_.predict(X)) * self.scale_


def _timed(fit: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    model = fit()
    return model, time.perf_counter() - wall, time.process_time() - cpu


def _ours(
    who: str,
    space: SearchSpace,
    train_cfgs: list[Config],
    y_train: np.ndarray,
    seed: int,
    features: Callable[[Config], list[float]] | None,
) -> tuple[Any, float, float]:
    if who in ENGINE_CANDIDATES:
        candidates = ENGINE_CANDIDATES[who]
        return _timed(
            lambda: fit_metric(
                space,
                train_cfgs,
                y_train,
                random_state=seed,
                candidates=candidates,
                features=features,
            )
        )
    return _timed(
        lambda: fit_predictor(space, train_cfgs, y_train, random_state=seed, features=features)
    )


def run_once(
    space: SearchSpace,
    configs: list[Config],
    y: np.ndarray,
    n_train: int,
    seed: int,
    max_train: int,
    cost_features: ExactFeatures,
) -> dict[str, dict[str, Any]]:
    """All predictors on one split: n_train training networks, the same held-out networks."""
    order = np.random.default_rng(seed).permutation(len(configs))
    train, held_out = order[:n_train], order[max_train:]
    train_cfgs = [configs[i] for i in train]
    test_cfgs = [configs[i] for i in held_out]
    results: dict[str, dict[str, Any]] = {}
    by_config = cost_features.of_config
    engine_features = by_config if DEFAULT_EXACT_FEATURES else None
    variants = {
        "ours": None,
        "ours+cost": by_config,
        "engine": engine_features,
        "ridge-onehot": None,
    }
    for who, features in variants.items():
        fit, wall, cpu = _ours(who, space, train_cfgs, y[train], seed, features)
        results[who] = {
            **rank_quality(y[held_out], fit.predict(test_cfgs)),
            "model": fit.model_name,
            "fit_seconds": wall,
            "fit_cpu_seconds": cpu,
            "cv_kendall_tau": fit.scores["kendall_tau"],
        }
    with threadpool_limits(1):
        dynast, wall, cpu = _timed(lambda: DynastStylePredictor(space).fit(train_cfgs, y[train]))
        predictions = dynast.predict(test_cfgs)
    results["dynast"] = {
        **rank_quality(y[held_out], predictions),
        "model": dynast.model_name,
        "fit_seconds": wall,
        "fit_cpu_seconds": cpu,
    }
    return results


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and spread over repeats of each figure; models chosen, counted."""
    out: dict[str, Any] = {}
    for key in (
        "kendall_tau",
        "spearman",
        "mape",
        "rmse",
        "fit_seconds",
        "fit_cpu_seconds",
        "cv_kendall_tau",
    ):
        values = [r[key] for r in runs if key in r]
        if values:
            out[key] = statistics.fmean(values)
            out[f"{key}_std"] = statistics.pstdev(values)
    out["models"] = {
        m: sum(r["model"] == m for r in runs) for m in sorted({r["model"] for r in runs})
    }
    return out


def run(data: Path, repeats: int, sizes: Sequence[int]) -> dict[str, Any]:
    space = ArchSpec().search_space()
    configs, values = load_measurements(data)
    max_train = max(sizes)
    if len(configs) - max_train < MIN_HELD_OUT:
        raise SystemExit(
            f"{data} has {len(configs)} networks; need at least {max_train + MIN_HELD_OUT} to "
            f"train on {max_train} and hold out {MIN_HELD_OUT}"
        )
    report: dict[str, Any] = {
        "data": str(data),
        "n_networks": len(configs),
        "n_held_out": len(configs) - max_train,
        "repeats": repeats,
        "environment": library_versions(),
        "results": {},
    }
    features = exact_cost_features(space)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for target in TARGETS:
            for n_train in sizes:
                runs = [
                    run_once(space, configs, values[target], n_train, seed, max_train, features)
                    for seed in range(repeats)
                ]
                report["results"][f"{target}@{n_train}"] = {
                    who: summarise([r[who] for r in runs]) for who in runs[0]
                }
    report["issue_targets"] = issue_targets(report["results"])
    return report


def issue_targets(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's bar for the search's own predictor (`engine`): accuracy τ ≥ 0.9 at 100
    samples, ≥ DyNAS-T's, and fit ≤ 1 s."""
    at_100 = results.get("accuracy@100")
    if at_100 is None:
        return {}
    ours, dynast = at_100["engine"], at_100["dynast"]
    return {
        "predictor": "engine",
        "accuracy_tau_at_100": ours["kendall_tau"],
        "dynast_accuracy_tau_at_100": dynast["kendall_tau"],
        "tau_at_least_0.9": ours["kendall_tau"] >= ISSUE_TARGET_TAU,
        "tau_at_least_dynast": ours["kendall_tau"] >= dynast["kendall_tau"],
        "fit_seconds_at_100": ours["fit_seconds"],
        "fit_within_1s": ours["fit_seconds"] <= ISSUE_TARGET_FIT_SECONDS,
    }


def table(report: dict[str, Any]) -> str:
    header = (
        f"{'target@n_train':20s} {'who':12s} {'model (runs)':30s} {'tau':>12s} "
        f"{'MAPE %':>7s} {'fit s':>6s} {'cpu s':>6s}"
    )
    lines = [header, "-" * len(header)]
    for key, row in report["results"].items():
        for who, s in row.items():
            models = ", ".join(f"{m}×{c}" for m, c in s["models"].items())
            lines.append(
                f"{key:20s} {who:12s} {models:30s} "
                f"{s['kendall_tau']:6.3f}±{s['kendall_tau_std']:.3f} {100 * s['mape']:7.2f} "
                f"{s['fit_seconds']:6.2f} {s['fit_cpu_seconds']:6.2f}"
            )
    return "\n".join(lines)


# -- tabular: the real NAS-Bench-201 table (benchmarks/data/nb201_cifar10_latency.npz) ------------

TABULAR_HELD_OUT = 3000
TABULAR_REFERENCE = ("ridge",)


def tabular_report(repeats: int, sizes: Sequence[int]) -> dict[str, Any]:
    """Kendall tau of what LINAS fits by default (`fit_metric`, the engine's default candidates,
    the cell space's path features) on NB201 CIFAR-10 accuracy and each device's latency, from
    random training cells (seed r), on the same held-out cells; ridge alone for reference."""
    from benchmarks.tabular_search import Table, make_space
    from service.search.surrogate import fit_metric

    table = Table()
    space = make_space(table.ops)
    configs = [space.from_indices(g) for g in table.genes]
    held_out = np.random.default_rng(12345).choice(len(configs), TABULAR_HELD_OUT, replace=False)
    pool = np.setdiff1d(np.arange(len(configs)), held_out)
    targets = {"accuracy": table.accuracy}
    targets |= {f"latency@{d}": table.latency[:, j] for j, d in enumerate(table.devices)}
    out: dict[str, Any] = {}
    for name, y in targets.items():
        for n in sizes:
            for label, candidates in (("engine", DEFAULT_PREDICTORS), ("ridge", TABULAR_REFERENCE)):
                taus, chosen, seconds = [], [], []
                for r in range(repeats):
                    train = np.random.default_rng(r).choice(pool, n, replace=False)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        fit, wall, _ = _timed(
                            lambda train=train, candidates=candidates, y=y, r=r: fit_metric(
                                space,
                                [configs[i] for i in train],
                                y[train],
                                random_state=r,
                                candidates=list(candidates),
                            )
                        )
                    predicted = fit.predict([configs[i] for i in held_out])
                    taus.append(rank_quality(y[held_out], predicted)["kendall_tau"])
                    chosen.append(fit.model_name)
                    seconds.append(wall)
                out.setdefault(name, {}).setdefault(str(n), {})[label] = {
                    "kendall_tau_median": round(float(statistics.median(taus)), 3),
                    "kendall_tau": [round(float(t), 3) for t in taus],
                    "models": chosen,
                    "fit_seconds_median": round(float(statistics.median(seconds)), 3),
                }
    ceiling = tabular_ceiling(space, configs, targets, pool, held_out)
    return {
        "predictors": list(DEFAULT_PREDICTORS),
        "repeats": repeats,
        "targets": out,
        "ceiling": ceiling,
    }


def tabular_ceiling(
    space: Any,
    configs: Sequence[Config],
    targets: dict[str, np.ndarray],
    pool: np.ndarray,
    held_out: np.ndarray,
) -> dict[str, float]:
    """τ on the held-out cells of the better of ridge and gradient-boosted trees, each trained on
    every other cell (12,625) with every feature: about what the genes can tell of a metric
    whose measurements carry noise, far past any search's budget."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    from predictors.candidates import ridge
    from predictors.encoding import ConfigEncoder

    X = ConfigEncoder(space, encoding="onehot").transform(configs)
    taus = {}
    for name, y in targets.items():
        best = -1.0
        for model in (ridge(0), HistGradientBoostingRegressor(max_iter=200, random_state=0)):
            with threadpool_limits(1):  # OpenMP threads spin on a loaded host
                predicted = model.fit(X[pool], y[pool]).predict(X[held_out])
            best = max(best, rank_quality(y[held_out], predicted)["kendall_tau"])
        taus[name] = round(best, 3)
    return taus


def tabular_table(report: dict[str, Any]) -> str:
    lines = [
        f"{'target':<26}{'n':>5} {'engine tau':>11} {'ridge tau':>10} {'fit s':>7} "
        f"{'all data':>8}  models"
    ]
    for name, by_n in report["targets"].items():
        for n, row in by_n.items():
            engine, ridge = row["engine"], row["ridge"]
            lines.append(
                f"{name:<26}{n:>5} {engine['kendall_tau_median']:11.3f} "
                f"{ridge['kendall_tau_median']:10.3f} {engine['fit_seconds_median']:7.2f} "
                f"{report['ceiling'][name]:8.3f}  " + ",".join(sorted(set(engine["models"])))
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(TRAIN_SIZES))
    parser.add_argument(
        "--tabular", action="store_true", help="the NAS-Bench-201 table instead (real data)"
    )
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    args = parser.parse_args(argv)
    if args.tabular:
        tabular = tabular_report(args.repeats, args.sizes)
        print(tabular_table(tabular))
        print(json.dumps(tabular, indent=2))
        if args.out:
            args.out.write_text(json.dumps(tabular, indent=2) + "\n")
        return 0
    report = run(args.data, args.repeats, args.sizes)
    print(table(report))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
