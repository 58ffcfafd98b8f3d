"""Pieces of the non-linear candidates, for landscapes a linear model cannot rank (cell spaces).

`RankEnsembleRegressor` averages its members on a common, scale-free footing: each member's
prediction becomes its quantile among that member's own predictions of the training set, the
quantiles are averaged, and the mean quantile is mapped back through the training targets'
quantile function. A prediction depends only on its own row (not on the batch it comes in), so the
inner search can cache it; the spread of the members' quantiles (in target units) is the std.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin, clone
from sklearn.preprocessing import QuantileTransformer
from sklearn.utils.validation import check_is_fitted, validate_data


class RankEnsembleRegressor(RegressorMixin, BaseEstimator):
    """Rank-averaged ensemble of `estimators` (a list of (name, regressor))."""

    def __init__(self, estimators: Sequence[tuple[str, Any]] = ()) -> None:
        self.estimators = estimators

    def fit(self, X: Any, y: Any) -> RankEnsembleRegressor:
        X, y = validate_data(self, X, y, y_numeric=True)
        if not self.estimators:
            raise ValueError("RankEnsembleRegressor needs at least one (name, estimator)")
        self.estimators_ = [clone(est).fit(X, y) for _, est in self.estimators]
        self.train_predictions_ = [np.sort(est.predict(X)) for est in self.estimators_]
        self.sorted_y_ = np.sort(np.asarray(y, dtype=float))
        return self

    def _quantiles(self, X: np.ndarray) -> np.ndarray:
        columns = []
        for est, reference in zip(self.estimators_, self.train_predictions_, strict=True):
            pred = np.asarray(est.predict(X), dtype=float)
            # Linear interpolation of the empirical CDF; outside the training range it extrapolates
            # with the outermost slope, so the extremes keep their order.
            positions = np.linspace(0.0, 1.0, len(reference))
            columns.append(_interp_extrapolate(pred, reference, positions))
        return np.column_stack(columns)

    def _to_target(self, q: np.ndarray) -> np.ndarray:
        positions = np.linspace(0.0, 1.0, len(self.sorted_y_))
        return _interp_extrapolate(q, positions, self.sorted_y_)

    def predict(self, X: Any, return_std: bool = False) -> Any:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        q = self._quantiles(X)
        mean = self._to_target(q.mean(axis=1))
        if not return_std:
            return mean
        per_member = self._to_target(q.ravel()).reshape(q.shape)
        return mean, per_member.std(axis=1)


def _interp_extrapolate(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """np.interp over increasing `xp` (ties allowed) that extends the end segments linearly."""
    xp, keep = np.unique(xp, return_index=True)
    fp = np.asarray(fp, dtype=float)[keep]
    if len(xp) == 1:
        return np.full(len(x), fp[0])
    out = np.interp(x, xp, fp)
    low_slope = (fp[1] - fp[0]) / (xp[1] - xp[0])
    high_slope = (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    out = np.where(x < xp[0], fp[0] + (x - xp[0]) * low_slope, out)
    return np.where(x > xp[-1], fp[-1] + (x - xp[-1]) * high_slope, out)


class LargeColumnScaler(TransformerMixin, BaseEstimator):
    """Standardises only the columns whose magnitude exceeds `threshold` (exact MACs, params).

    Indicator and small count columns (one-hot genes, a cell's path encoding) stay as they are:
    standardising a rarely-set indicator would blow it up to dominate an RBF distance."""

    def __init__(self, threshold: float = 10.0) -> None:
        self.threshold = threshold

    def fit(self, X: Any, y: Any = None) -> LargeColumnScaler:
        X = validate_data(self, X)
        large = np.max(np.abs(X), axis=0) > self.threshold
        self.mean_ = np.where(large, X.mean(axis=0), 0.0)
        scale = X.std(axis=0)
        self.scale_ = np.where(large & (scale > 0), scale, 1.0)
        return self

    def transform(self, X: Any) -> Any:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return (X - self.mean_) / self.scale_


class NormalQuantiles(QuantileTransformer):
    """`QuantileTransformer` that uses at most as many quantiles as it has samples, silently
    (the search fits on 8 to 300 samples; the parameter itself stays as given)."""

    def fit(self, X: Any, y: Any = None) -> NormalQuantiles:
        given: int = self.n_quantiles  # type: ignore[has-type]
        n_samples = X.shape[0] if hasattr(X, "shape") else len(X)
        self.n_quantiles = max(1, min(given, n_samples))
        try:
            return super().fit(X, y)
        finally:
            self.n_quantiles = given
