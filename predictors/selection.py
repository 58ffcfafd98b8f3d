"""Model selection by cross-validated Kendall τ, and the fitted predictor the search uses.

Each candidate gets out-of-fold predictions from one K-fold split (at most 5 folds); the pooled
out-of-fold predictions are scored with `rank_quality`, the candidate with the highest Kendall τ
wins and is refitted on all samples. The mean ensemble's out-of-fold predictions are exactly the
mean of its members' (same folds and seeds), so it costs no extra fits.

The choice must not hang on rounding (docs/benchmarks.md, "Reproducible on any machine"): fits
and predictions run with one BLAS thread, predictions are rounded to `PREDICTION_BITS`
significant bits before they are scored or returned, and the τ that decides is rounded to
`TAU_DECIMALS` decimals, ties going to the earlier candidate.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import RegressorMixin
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from threadpoolctl import threadpool_limits

from predictors.candidates import (
    DEFAULT_CANDIDATES,
    ENSEMBLE_MEMBERS,
    GIVES_STD,
    build_candidate,
    check_candidate_names,
)
from predictors.encoding import ConfigEncoder, ConfigFeatures, Encoding
from predictors.metrics import rank_quality
from service.supernets.space import Config, SearchSpace

MIN_TRAIN_SAMPLES = 5
MAX_FOLDS = 5
# Small matrices: BLAS threads only contend with each other (and the training run) here, and one
# thread sums in one order whatever the machine's core count.
BLAS_THREADS = 1
# 20 significant bits (a relative step of 1e-6, about 6 decimal digits): far below any measured
# metric's noise, far above the last-bit differences of other BLAS kernels or SIMD paths (1e-13).
PREDICTION_BITS = 20
# CV τ differences below 5e-5 are no decision (one swapped pair moves τ by 2e-4 at 100 samples).
TAU_DECIMALS = 4
# Every column, or every column but the space's own features ("name@genes" in the scores).
FEATURE_SETS = ("all", "genes")


def _variant_key(name: str, feature_set: str) -> str:
    return name if feature_set == FEATURE_SETS[0] else f"{name}@{feature_set}"


def round_significant(values: ArrayLike, bits: int = PREDICTION_BITS) -> np.ndarray:
    """Values rounded to `bits` significant binary digits (exact: frexp, rint and ldexp only).

    Two machines whose kernels differ in the last bits of a prediction round it to the same
    value unless it lies within 1e-13 of a rounding boundary; no transcendental (log10) is used,
    since numpy's SIMD paths for those differ between CPUs."""
    x = np.asarray(values, dtype=np.float64)
    mantissa, exponent = np.frexp(x)
    return np.ldexp(np.rint(np.ldexp(mantissa, bits)), exponent - bits)


@dataclass
class PredictorFit:
    """A fitted predictor of one metric over a search space, with its cross-validated scores."""

    model_name: str
    estimator: RegressorMixin
    encoder: ConfigEncoder
    scores: dict[str, float]
    n_train: int
    fit_seconds: float
    random_state: int = 0
    candidate_scores: dict[str, dict[str, float]] = field(default_factory=dict)
    feature_set: str = FEATURE_SETS[0]

    @property
    def gives_std(self) -> bool:
        return self.model_name in GIVES_STD

    def predict(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Predicted metric values, one per config."""
        X = self.encoder.transform(configs)
        if len(X) == 0:
            return np.zeros(0)
        with threadpool_limits(BLAS_THREADS):
            return round_significant(self.estimator.predict(X))

    def predict_std(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray | None:
        """Uncertainty per config (GP std, tree or member spread); None if the model has none."""
        if not self.gives_std:
            return None
        X = self.encoder.transform(configs)
        if len(X) == 0:
            return np.zeros(0)
        with threadpool_limits(BLAS_THREADS):
            _, std = self.estimator.predict(X, return_std=True)
        return round_significant(std)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-safe description for the database (no estimator)."""
        return {
            "model_name": self.model_name,
            "scores": _finite_or_none(self.scores),
            "n_train": self.n_train,
            "fit_seconds": round(self.fit_seconds, 4),
            "random_state": self.random_state,
            "gives_std": self.gives_std,
            "feature_set": self.feature_set,
            "encoding": self.encoder.to_json(),
            "candidates": {
                name: _finite_or_none(scores) for name, scores in self.candidate_scores.items()
            },
        }


def _finite_or_none(scores: Mapping[str, float]) -> dict[str, float | None]:
    return {k: float(v) if np.isfinite(v) else None for k, v in scores.items()}


def check_training_data(configs: Sequence[Mapping[str, Any]], y: ArrayLike) -> np.ndarray:
    """Validate the targets against the configs; return them as a float vector."""
    if isinstance(configs, Mapping):
        raise ValueError("configs must be a sequence of configs, not a single config")
    target = np.asarray(y, dtype=np.float64)
    if target.ndim != 1:
        raise ValueError(f"y must be 1-D (one value per config), got shape {target.shape}")
    if len(target) != len(configs):
        raise ValueError(f"got {len(configs)} configs but {len(target)} target values")
    if len(target) < MIN_TRAIN_SAMPLES:
        raise ValueError(
            f"need at least {MIN_TRAIN_SAMPLES} validated configs to fit a predictor, "
            f"got {len(target)}"
        )
    bad = np.flatnonzero(~np.isfinite(target))
    if len(bad):
        raise ValueError(
            f"y has {len(bad)} NaN or infinite value(s), first at index {bad[0]}; "
            "drop those configs or measure them again"
        )
    return target


def out_of_fold_predictions(
    names: Sequence[str], X: np.ndarray, y: np.ndarray, random_state: int, n_trend: int = 0
) -> dict[str, np.ndarray]:
    """Pooled K-fold out-of-fold predictions per candidate (the ensemble from its members'),
    rounded with `round_significant`.

    With `n_trend` every candidate is fitted after the same least-squares trend, so the ensemble
    of trend-fitted members is still exactly their mean."""
    folds = KFold(n_splits=min(MAX_FOLDS, len(y)), shuffle=True, random_state=random_state)
    needed = [n for n in names if n != "ensemble"]
    if "ensemble" in names:
        needed += [m for m in ENSEMBLE_MEMBERS if m not in needed]
    predictions: dict[str, np.ndarray] = {}
    with warnings.catch_warnings(), threadpool_limits(BLAS_THREADS):
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name in needed:
            model = build_candidate(name, random_state, n_trend)
            predictions[name] = cross_val_predict(model, X, y, cv=folds)
    if "ensemble" in names:
        predictions["ensemble"] = np.mean([predictions[m] for m in ENSEMBLE_MEMBERS], axis=0)
    return {name: round_significant(predictions[name]) for name in names}


def fit_predictor(
    space: SearchSpace,
    configs: Sequence[Config],
    y: ArrayLike,
    *,
    random_state: int = 0,
    features: ConfigFeatures | None = None,
    candidates: Sequence[str] | None = None,
    encoding: Encoding = "thermometer",
) -> PredictorFit:
    """Choose the candidate with the best cross-validated Kendall τ and fit it on all samples.

    Genes are thermometer-encoded by default (what `monotone` needs; ridge ranks at least as
    well on it as on one-hot). The caller's `features` (exact MACs, params, ...) are encoded
    after the genes, and every candidate but `monotone` first fits a linear trend on them
    (`FeatureTrendRegressor`)."""
    started = time.perf_counter()
    names = DEFAULT_CANDIDATES if candidates is None else candidates
    check_candidate_names(names)
    names = list(names)
    target = check_training_data(configs, y)
    encoder = ConfigEncoder(space, encoding=encoding, features=features)
    X = encoder.transform(configs)

    n_trend = encoder.n_caller_features
    # A space's own features (a cell's path encoding) can help one metric and drown another
    # (accuracy vs latency on NAS-Bench-201, docs/predictors.md): each candidate is also tried
    # without them, and cross-validation decides.
    kept = encoder.columns_without_space_features()
    variants: dict[str, list[int] | None] = {FEATURE_SETS[0]: None}
    if kept is not None:
        variants[FEATURE_SETS[1]] = kept
    candidate_scores: dict[str, dict[str, float]] = {}
    for feature_set, columns in variants.items():
        X_set = X if columns is None else X[:, columns]
        oof = out_of_fold_predictions(names, X_set, target, random_state, n_trend)
        for name, pred in oof.items():
            candidate_scores[_variant_key(name, feature_set)] = rank_quality(target, pred)
    best_key = max(
        candidate_scores, key=lambda k: round(candidate_scores[k]["kendall_tau"], TAU_DECIMALS)
    )
    best, _, best_set = best_key.partition("@")
    best_set = best_set or FEATURE_SETS[0]

    estimator = build_candidate(best, random_state, n_trend)
    columns = variants[best_set]
    if columns is not None:
        keep = ColumnTransformer([(best_set, "passthrough", columns)])
        estimator = make_pipeline(keep, estimator)
    with warnings.catch_warnings(), threadpool_limits(BLAS_THREADS):
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(X, target)
    return PredictorFit(
        model_name=best,
        estimator=estimator,
        encoder=encoder,
        scores=candidate_scores[best_key],
        n_train=len(target),
        fit_seconds=time.perf_counter() - started,
        random_state=random_state,
        candidate_scores=candidate_scores,
        feature_set=best_set,
    )
