"""Predictor quality: rank agreement (Kendall τ, Spearman ρ) and value error (MAPE, RMSE)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import kendalltau, spearmanr
from sklearn.metrics import mean_absolute_percentage_error, root_mean_squared_error

METRIC_NAMES = ("kendall_tau", "spearman", "mape", "rmse")


def _rank_correlation(value: float) -> float:
    # A constant prediction (or target) carries no ranking information: score it 0, not NaN.
    return 0.0 if np.isnan(value) else float(value)


def rank_quality(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """Kendall τ-b, Spearman ρ, MAPE (a fraction: 0.05 is 5 %) and RMSE of `y_pred` vs `y_true`."""
    true = np.asarray(y_true, dtype=np.float64)
    pred = np.asarray(y_pred, dtype=np.float64)
    if true.ndim != 1 or pred.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D, got shapes {true.shape} and {pred.shape}")
    if len(true) != len(pred):
        raise ValueError(f"y_true has {len(true)} values but y_pred has {len(pred)}")
    if len(true) < 2:
        raise ValueError(f"rank quality needs at least 2 values, got {len(true)}")
    if not (np.all(np.isfinite(true)) and np.all(np.isfinite(pred))):
        raise ValueError("y_true and y_pred must be finite (no NaN or infinity)")
    constant = np.ptp(true) == 0 or np.ptp(pred) == 0
    return {
        "kendall_tau": 0.0 if constant else _rank_correlation(kendalltau(true, pred).statistic),
        "spearman": 0.0 if constant else _rank_correlation(spearmanr(true, pred).statistic),
        "mape": float(mean_absolute_percentage_error(true, pred)),
        "rmse": float(root_mean_squared_error(true, pred)),
    }
