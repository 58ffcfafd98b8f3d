"""A LUT sum corrected by a small regression fitted on measured whole networks.

Summed per-op latencies underestimate whole networks (cache effects, per-session overheads), and
not uniformly across op types. Features per network: the raw sum, per-group sums (op kind × output
shape, i.e. per stage) and op counts per group. Linear models compete by cross-validated MAPE
(`scale`: a·sum, `affine`: a·sum + b, `robust_affine`: the same with a Huber loss against noisy
measurements, `groups`: ridge on all features); the winner is refitted on all data and stored as
plain coefficients, so persistence is JSON, never pickle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import HuberRegressor, LinearRegression, RidgeCV
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from latency_tables.estimator import MissingOpKeysError
from latency_tables.schema import LatencyTable, LatencyTableError

MODEL_NAMES = ("scale", "affine", "robust_affine", "groups")
CALIBRATION_FORMAT = "hwnas-latency-calibration/1"
_RIDGE_ALPHAS = np.logspace(-3, 3, 13)


def op_group(key: str) -> str:
    """The group an op key counts towards: its kind plus its output shape (the stage)."""
    kind, *fields = key.split("-")
    output = next((f.split(":", 1)[1] for f in fields if f.startswith("output:")), "")
    return f"{kind}@{output}" if output else kind


@dataclass(frozen=True)
class CalibrationScores:
    """Cross-validated error of an estimate against measured latencies."""

    mape: float  # mean absolute percentage error, in %
    within_10pct: float  # share of networks estimated within ±10 %, in [0, 1]
    n_networks: int


def score_estimates(estimated_ms: np.ndarray, measured_ms: np.ndarray) -> CalibrationScores:
    relative_error = np.abs(np.asarray(estimated_ms) - measured_ms) / measured_ms
    return CalibrationScores(
        mape=float(100.0 * relative_error.mean()),
        within_10pct=float((relative_error <= 0.10).mean()),
        n_networks=len(measured_ms),
    )


class CalibratedLatencyEstimator:
    """`fit(layer_key_lists, measured_ms)` then `predict(layer_key_lists)` → ms per network."""

    def __init__(
        self,
        lut: LatencyTable,
        statistic: str = "median",
        models: Sequence[str] = MODEL_NAMES,
        cv_folds: int = 5,
        random_state: int = 0,
    ) -> None:
        self.lut = lut
        self.statistic = statistic
        self.models = models
        self.cv_folds = cv_folds
        self.random_state = random_state

    def _features(self, layer_key_lists: Sequence[Sequence[str]], groups: list[str]) -> np.ndarray:
        index = {group: i for i, group in enumerate(groups)}
        rows = np.zeros((len(layer_key_lists), 1 + 2 * len(groups)))
        for row, keys in zip(rows, layer_key_lists, strict=True):
            missing = self.lut.missing_keys(list(keys))
            if missing:
                raise MissingOpKeysError(self.lut, missing)
            for key in keys:
                latency_ms = self.lut.entries[key].latency_ms(self.statistic)
                row[0] += latency_ms
                column = index.get(op_group(key))
                if column is not None:
                    row[1 + column] += latency_ms
                    row[1 + len(groups) + column] += 1
        return rows

    def _regressor(self, name: str) -> Pipeline:
        if name == "scale":
            return make_pipeline(
                FunctionTransformer(_raw_sum_column), LinearRegression(fit_intercept=False)
            )
        if name == "affine":
            return make_pipeline(FunctionTransformer(_raw_sum_column), LinearRegression())
        if name == "robust_affine":
            return make_pipeline(
                FunctionTransformer(_raw_sum_column), HuberRegressor(max_iter=1000)
            )
        if name == "groups":
            return make_pipeline(StandardScaler(), RidgeCV(alphas=_RIDGE_ALPHAS))
        raise LatencyTableError(f"unknown calibration model {name!r}; choose from {MODEL_NAMES}")

    def fit(
        self, layer_key_lists: Sequence[Sequence[str]], measured_ms: Sequence[float]
    ) -> CalibratedLatencyEstimator:
        """Choose and fit the calibration; `cv_scores_` holds each model's cross-validated error."""
        measured = np.asarray(measured_ms, dtype=float)
        if len(measured) != len(layer_key_lists):
            raise LatencyTableError(
                f"{len(layer_key_lists)} networks but {len(measured)} measured latencies"
            )
        if len(measured) < 2 * self.cv_folds or np.any(measured <= 0):
            raise LatencyTableError(
                f"calibration needs at least {2 * self.cv_folds} networks with positive measured "
                f"latency; got {len(measured)}"
            )
        self.groups_ = sorted({op_group(k) for keys in layer_key_lists for k in keys})
        features = self._features(layer_key_lists, self.groups_)
        folds = KFold(self.cv_folds, shuffle=True, random_state=self.random_state)
        self.raw_scores_ = score_estimates(features[:, 0], measured)
        self.cv_scores_: dict[str, CalibrationScores] = {}
        for name in self.models:
            predicted = cross_val_predict(self._regressor(name), features, measured, cv=folds)
            self.cv_scores_[name] = score_estimates(predicted, measured)
        self.model_ = min(self.cv_scores_, key=lambda name: self.cv_scores_[name].mape)
        self.coef_, self.intercept_ = _plain_coefficients(
            self._regressor(self.model_).fit(features, measured), features.shape[1]
        )
        return self

    def predict(self, layer_key_lists: Sequence[Sequence[str]]) -> np.ndarray:
        features = self._features(layer_key_lists, self.groups_)
        return np.asarray(features @ self.coef_ + self.intercept_)

    def to_json(self) -> dict[str, Any]:
        """Plain parameters, tied to the LUT they were fitted on by its fingerprint."""
        return {
            "format": CALIBRATION_FORMAT,
            "lut_fingerprint": self.lut.fingerprint(),
            "device": self.lut.device,
            "family": self.lut.family,
            "statistic": self.statistic,
            "model": self.model_,
            "groups": self.groups_,
            "coef": [float(c) for c in self.coef_],
            "intercept": float(self.intercept_),
            "raw_sum_scores": asdict(self.raw_scores_),
            "cv_scores": {name: asdict(s) for name, s in self.cv_scores_.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], lut: LatencyTable) -> CalibratedLatencyEstimator:
        """Restore a calibration for `lut`; refuses one fitted on a different table."""
        if data.get("format") != CALIBRATION_FORMAT:
            raise LatencyTableError(
                f"calibration format {data.get('format')!r}; expected {CALIBRATION_FORMAT!r}"
            )
        if data.get("lut_fingerprint") != lut.fingerprint():
            raise LatencyTableError(
                f"calibration was fitted on another table (fingerprint "
                f"{str(data.get('lut_fingerprint'))[:12]}…, this table {lut.fingerprint()[:12]}…); "
                "refit it on this table"
            )
        try:
            estimator = cls(lut, statistic=str(data["statistic"]))
            estimator.model_ = str(data["model"])
            estimator.groups_ = [str(g) for g in data["groups"]]
            estimator.coef_ = np.asarray(data["coef"], dtype=float)
            estimator.intercept_ = float(data["intercept"])
            estimator.raw_scores_ = CalibrationScores(**data["raw_sum_scores"])
            estimator.cv_scores_ = {
                name: CalibrationScores(**s) for name, s in data["cv_scores"].items()
            }
        except (KeyError, TypeError, ValueError) as error:
            raise LatencyTableError(f"calibration JSON is malformed: {error!r}") from error
        if len(estimator.coef_) != 1 + 2 * len(estimator.groups_):
            raise LatencyTableError(
                f"calibration has {len(estimator.coef_)} coefficients for "
                f"{len(estimator.groups_)} groups; expected {1 + 2 * len(estimator.groups_)}"
            )
        return estimator


def _raw_sum_column(features: np.ndarray) -> np.ndarray:
    return features[:, :1]


def _plain_coefficients(pipeline: Pipeline, n_features: int) -> tuple[np.ndarray, float]:
    """Fold the pipeline into `features @ coef + intercept` over the raw features."""
    first, regressor = pipeline.steps[0][1], pipeline.steps[-1][1]
    coef = np.zeros(n_features)
    intercept = float(np.ravel([regressor.intercept_])[0]) if regressor.fit_intercept else 0.0
    if isinstance(first, FunctionTransformer):
        coef[0] = float(regressor.coef_[0])
        return coef, intercept
    scale = np.where(first.scale_ == 0, 1.0, first.scale_)
    coef = regressor.coef_ / scale
    return coef, intercept - float(coef @ first.mean_)
