"""scikit-learn regressors that also report an uncertainty: `predict(X, return_std=True)`.

Tree ensembles give the spread of their trees' predictions; the mean ensemble gives the spread of
its members' predictions. Both keep the scikit-learn estimator contract (they only add a keyword).
`FeatureTrendRegressor` fits a linear trend on a few trusted columns first (exact MACs behind
latency) and its regressor on what the trend leaves. `MonotoneRidge` is ridge whose weights all
share one sign: on the thermometer encoding, a prediction that only grows (or only falls) as any
gene steps up its choices.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import nnls
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor, VotingRegressor
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data


def _weighted_spread(member_predictions: np.ndarray, weights: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation across columns (members), optionally weighted."""
    mean = np.average(member_predictions, axis=1, weights=weights)
    variance = np.average((member_predictions - mean[:, None]) ** 2, axis=1, weights=weights)
    return mean, np.sqrt(variance)


class _TreeSpreadMixin:
    """Adds `return_std`: the standard deviation of the individual trees' predictions."""

    estimators_: list[Any]

    def predict(self, X: Any, return_std: bool = False) -> Any:
        mean = super().predict(X)  # type: ignore[misc]
        if not return_std:
            return mean
        X_checked = self._validate_X_predict(X)  # type: ignore[attr-defined]
        per_tree = np.stack([tree.predict(X_checked) for tree in self.estimators_], axis=1)
        return mean, per_tree.std(axis=1)


class ExtraTreesWithStd(_TreeSpreadMixin, ExtraTreesRegressor):
    """`ExtraTreesRegressor` whose `predict(X, return_std=True)` adds the trees' spread."""


class RandomForestWithStd(_TreeSpreadMixin, RandomForestRegressor):
    """`RandomForestRegressor` whose `predict(X, return_std=True)` adds the trees' spread."""


class MeanEnsembleRegressor(VotingRegressor):
    """Average of member regressors; `predict(X, return_std=True)` adds the members' spread."""

    def predict(self, X: Any, return_std: bool = False) -> Any:
        check_is_fitted(self)
        mean, std = _weighted_spread(self._predict(X), self._weights_not_none)
        return (mean, std) if return_std else mean


class FeatureTrendRegressor(RegressorMixin, BaseEstimator):
    """A least-squares trend on the last `n_trend` columns plus `regressor` fitted to its residual.

    Penalised and tree models spread a strong linear dependence on one column (latency on exact
    MACs) over a hundred one-hot columns when they see 100 samples; fitting that trend first and
    the model on what it leaves keeps it (`docs/predictors.md`: ridge's latency tau at 100
    samples 0.84 on genes alone, 0.94 after the MACs/params trend).
    `predict(X, return_std=True)` passes the regressor's std through (the trend adds none).
    """

    def __init__(self, regressor: Any = None, n_trend: int = 1) -> None:
        self.regressor = regressor
        self.n_trend = n_trend

    def fit(self, X: Any, y: Any) -> FeatureTrendRegressor:
        X, y = validate_data(self, X, y, y_numeric=True)
        if not 1 <= self.n_trend <= X.shape[1]:
            raise ValueError(
                f"n_trend={self.n_trend} must be between 1 and the {X.shape[1]} columns of X"
            )
        self.trend_ = LinearRegression().fit(X[:, -self.n_trend :], y)
        residual = y - self.trend_.predict(X[:, -self.n_trend :])
        self.regressor_ = clone(self.regressor if self.regressor is not None else Ridge())
        self.regressor_.fit(X, residual)
        return self

    def predict(self, X: Any, return_std: bool = False) -> Any:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        trend = self.trend_.predict(X[:, -self.n_trend :])
        if not return_std:
            return trend + self.regressor_.predict(X)
        mean, std = self.regressor_.predict(X, return_std=True)
        return trend + mean, std


def nonnegative_ridge(Z: np.ndarray, t: np.ndarray, alpha: float) -> np.ndarray:
    """argmin |Z w - t|² + alpha |w|² subject to w >= 0 (alpha > 0: one solution).

    scipy's `nnls` on the augmented system gives the start; it is not trusted alone, since with
    other BLAS kernels it can stop at a non-optimal point (seen with scipy 1.17.1 under
    OPENBLAS_CORETYPE=Sandybridge: objective 4.684 against the optimum 4.638). Lawson-Hanson
    iterations on the normal equations then run to the KKT conditions, so the result is the
    unique optimum, whatever path led there."""
    n_features = Z.shape[1]
    Q = Z.T @ Z + alpha * np.eye(n_features)
    c = Z.T @ t
    start, _ = nnls(
        np.vstack([Z, np.sqrt(alpha) * np.eye(n_features)]),
        np.concatenate([t, np.zeros(n_features)]),
    )
    w = np.maximum(start, 0.0)
    passive = w > 0
    tolerance = 1e-10 * max(1.0, float(np.max(np.abs(c), initial=0.0)))
    for _ in range(3 * n_features + 1):
        while True:  # the least-squares solution on the passive set, stepping back to w >= 0
            s = np.zeros(n_features)
            if passive.any():
                s[passive] = np.linalg.solve(Q[np.ix_(passive, passive)], c[passive])
            negative = passive & (s <= 0)
            if not negative.any():
                break
            step = np.min(w[negative] / (w[negative] - s[negative]))
            w = w + step * (s - w)
            passive &= w > 0
        w = s
        gradient = c - Q @ w
        gradient[passive] = -np.inf
        best = int(np.argmax(gradient))
        if gradient[best] <= tolerance:
            break
        passive[best] = True
    return w


class MonotoneRidge(RegressorMixin, BaseEstimator):
    """Ridge on standardised columns with every weight >= 0, or every weight <= 0.

    The prior "a larger choice of any gene never lowers accuracy" (or never lowers latency), as
    non-negative weights on the thermometer encoding: from 100 noisy accuracies it ranks held-out
    networks better than unconstrained models (`docs/predictors.md`). Both signs are fitted; the
    one with the smaller training error is kept, so falling metrics (error rate) work too.

    Solved exactly (`nonnegative_ridge`), not by an iterative solver whose stopping point moves
    with the last bits of a BLAS sum: the same solution as `Ridge(alpha, positive=True)` on the
    centred problem, on any machine.
    """

    def __init__(self, alpha: float = 3.0) -> None:
        self.alpha = alpha

    def fit(self, X: Any, y: Any) -> MonotoneRidge:
        X, y = validate_data(self, X, y, y_numeric=True)
        self.scaler_ = StandardScaler().fit(X)
        Z = self.scaler_.transform(X)
        # Z's columns are centred, so the unpenalised intercept is the mean of the target.
        centred = y - y.mean()
        fits = []
        for sign in (1.0, -1.0):
            coef = nonnegative_ridge(Z, sign * centred, self.alpha)
            error = float(np.sum((Z @ coef - sign * centred) ** 2))
            fits.append((error, -sign, sign, coef))  # equal errors: the rising direction
        _, _, self.sign_, self.coef_ = min(fits, key=lambda fit: fit[:2])
        self.intercept_ = float(self.sign_ * y.mean())
        return self

    def predict(self, X: Any) -> Any:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return self.sign_ * (self.scaler_.transform(X) @ self.coef_ + self.intercept_)
