"""scikit-learn regressors that also report an uncertainty: `predict(X, return_std=True)`.

Tree ensembles give the spread of their trees' predictions; the mean ensemble gives the spread of
its members' predictions. Both keep the scikit-learn estimator contract (they only add a keyword).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor, VotingRegressor
from sklearn.utils.validation import check_is_fitted


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
