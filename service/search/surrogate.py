"""Predicted metrics for the inner search: one fitted predictor per metric that is not exact.

Uses `predictors.fit_predictor`: the model is chosen by cross-validated Kendall tau at every fit.
Selection depends only on the validated networks, so a search resumed from its stored
evaluations fits the same predictors as one that never stopped.

Predictions are rounded to `predictors.selection.PREDICTION_BITS` significant bits and computed
with one BLAS thread, so the inner search ranks the same values on any machine.

The exact metrics the caller computes (MACs, params, ...) are not predicted; with
`SearchSpec.exact_features` they are also given to every predictor as extra features.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

import numpy as np
from threadpoolctl import threadpool_limits

from predictors.selection import BLAS_THREADS, round_significant
from service.search.encoding import SpaceEncoding, design_matrix
from service.search.exact import ExactMetrics
from service.search.spec import DEFAULT_PREDICTORS
from service.supernets.space import Config, SearchSpace

PROBE_ROWS = 240
CHECK_ROWS = 40


class MetricPredictor(Protocol):
    model_name: str
    scores: dict[str, float]
    n_train: int
    fit_seconds: float

    def predict(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray: ...

    def predict_std(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray | None: ...


def fit_metric(
    space: SearchSpace,
    configs: Sequence[Config],
    y: np.ndarray,
    *,
    random_state: int,
    candidates: Sequence[str],
    features: Callable[[Config], list[float]] | None = None,
) -> MetricPredictor:
    """Fit the project's predictor for one metric (the `predictors` package).

    Genes are one-hot encoded, as in the search-efficiency table's runs, unless `monotone` is
    a candidate: it needs the thermometer encoding."""
    from predictors.selection import fit_predictor

    return fit_predictor(
        space,
        list(configs),
        y,
        random_state=random_state,
        candidates=list(candidates),
        features=features,
        encoding="thermometer" if "monotone" in candidates else "onehot",
    )


@dataclass(frozen=True)
class ExactFeatures:
    """The exact metrics as predictor features, in a fixed order, from `ExactMetrics`' cache."""

    exact: ExactMetrics

    @cached_property
    def names(self) -> list[str]:
        return sorted(self.exact.names)

    def of_config(self, config: Config) -> list[float]:
        values = self.exact.of_config(config)
        return [values[name] for name in self.names]

    def of_rows(self, rows: np.ndarray) -> np.ndarray:
        columns = self.exact.columns(rows, self.names)
        return np.column_stack([columns[name] for name in self.names])


@dataclass(frozen=True)
class LinearFeatureMap:
    """A predictor's config encoding reproduced from index rows as `design_matrix(rows) @ W`.

    Learned by least squares on probe networks and kept only if it reproduces held-out encodings
    exactly; it makes predicting thousands of inner-search networks cost a matrix product.
    """

    encoding: SpaceEncoding
    weights: np.ndarray

    @classmethod
    def learn(
        cls, encoding: SpaceEncoding, encoder: Any, seed: int, n_extra: int = 0
    ) -> LinearFeatureMap | None:
        """Maps the encoder's columns but its last `n_extra` (exact features, not linear)."""
        rng = np.random.default_rng(seed)
        k = encoding.n_choices
        rows = np.concatenate(
            [
                encoding.latin_hypercube(PROBE_ROWS, rng),
                encoding.canonical_rows(rng.integers(0, k, (CHECK_ROWS, len(k)))),
                encoding.canonical_rows(np.stack([np.zeros_like(k), k - 1])),
            ]
        )
        try:
            X = np.asarray(encoder.transform([encoding.config_of(r) for r in rows]), dtype=float)
        except Exception:  # an encoder we cannot drive this way: keep the slow path
            return None
        X = X[:, : X.shape[1] - n_extra]
        D = design_matrix(encoding, rows)
        fit_part, check = slice(0, PROBE_ROWS), slice(PROBE_ROWS, None)
        with threadpool_limits(BLAS_THREADS):
            weights = np.linalg.lstsq(D[fit_part], X[fit_part], rcond=None)[0]
        feature_map = cls(encoding, weights)
        return feature_map if feature_map.reproduces(rows[check], X[check]) else None

    def reproduces(self, rows: np.ndarray, X: np.ndarray) -> bool:
        return bool(np.allclose(self.features(rows), X, rtol=1e-9, atol=1e-9))

    def features(self, rows: np.ndarray) -> np.ndarray:
        return design_matrix(self.encoding, rows) @ self.weights


@dataclass
class MetricModels:
    """Per-metric predictors refitted each LINAS iteration on every validated network."""

    encoding: SpaceEncoding
    metrics: Sequence[str]
    seed: int
    candidates: Sequence[str] = DEFAULT_PREDICTORS
    exact_features: ExactFeatures | None = None
    fits: dict[str, MetricPredictor] = field(default_factory=dict)
    _feature_map: LinearFeatureMap | None = None
    _map_tried: bool = False
    _fast: bool = False

    def refit(self, configs: Sequence[Config], columns: Mapping[str, np.ndarray]) -> None:
        """Fit every metric on the configs whose value for it is finite."""
        for metric in self.metrics:
            y = np.asarray(columns[metric], dtype=float)
            keep = np.flatnonzero(np.isfinite(y)).tolist()
            self.fits[metric] = fit_metric(
                self.encoding.space,
                [configs[i] for i in keep],
                y[keep],
                random_state=self.seed,
                candidates=self.candidates,
                features=self._features_callable(),
            )
        self._fast = self._fast_path_matches()

    def predict_rows(self, rows: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Like `predict`, from canonical index rows; a matrix product when the encoding allows.

        One BLAS thread and values rounded to `PREDICTION_BITS` significant bits, as `predict`:
        the inner search ranks these values, so their last bits must not depend on the machine."""
        if not self._fast or self._feature_map is None:
            return self.predict([self.encoding.space.from_indices(r) for r in rows])
        means: dict[str, np.ndarray] = {}
        stds: dict[str, np.ndarray] = {}
        with threadpool_limits(BLAS_THREADS):
            X = self._fast_features(rows)
            for metric, fit in self.fits.items():
                estimator: Any = getattr(fit, "estimator")  # noqa: B009 (beyond the protocol)
                if getattr(fit, "gives_std", False):
                    mean, std = estimator.predict(X, return_std=True)
                    stds[metric] = round_significant(std)
                else:
                    mean = estimator.predict(X)
                means[metric] = round_significant(mean)
        return means, stds

    def _fast_path_matches(self) -> bool:
        """True if every fit exposes `encoder` + `estimator` and the feature map reproduces it."""
        encoders: list[Any] = [getattr(fit, "encoder", None) for fit in self.fits.values()]
        if not encoders or any(
            e is None or not hasattr(f, "estimator")
            for e, f in zip(encoders, self.fits.values(), strict=True)
        ):
            return False
        if not self._map_tried:
            self._map_tried = True
            n_extra = len(self.exact_features.names) if self.exact_features else 0
            self._feature_map = LinearFeatureMap.learn(
                self.encoding, encoders[0], self.seed, n_extra
            )
        if self._feature_map is None:
            return False
        k = self.encoding.n_choices
        probe = self.encoding.canonical_rows(np.stack([np.zeros_like(k), k - 1, (k - 1) // 2]))
        configs = [self.encoding.config_of(r) for r in probe]
        X = self._fast_features(probe)
        return all(
            np.allclose(X, np.asarray(e.transform(configs), dtype=float), rtol=1e-9, atol=1e-9)
            for e in encoders
        )

    def _features_callable(self) -> Callable[[Config], list[float]] | None:
        return self.exact_features.of_config if self.exact_features else None

    def _fast_features(self, rows: np.ndarray) -> np.ndarray:
        """The fits' encoding of canonical rows: linear map, then the exact features."""
        assert self._feature_map is not None
        X = self._feature_map.features(rows)
        if self.exact_features is None:
            return X
        return np.hstack([X, self.exact_features.of_rows(rows)])

    def predict(self, configs: Sequence[Config]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Predicted mean per metric, and the std per metric where the model gives one."""
        means: dict[str, np.ndarray] = {}
        stds: dict[str, np.ndarray] = {}
        for metric, fit in self.fits.items():
            means[metric] = round_significant(fit.predict(configs))
            std = fit.predict_std(configs)
            if std is not None:
                stds[metric] = np.asarray(std, dtype=float)
        return means, stds

    def scores(self) -> dict[str, dict[str, float | str]]:
        """Cross-validated scores of the current fits, plus model name and sizes."""
        out: dict[str, dict[str, float | str]] = {}
        for metric, fit in self.fits.items():
            row: dict[str, float | str] = {k: float(v) for k, v in fit.scores.items()}
            row["model"] = fit.model_name
            row["n_train"] = float(fit.n_train)
            row["fit_seconds"] = float(fit.fit_seconds)
            out[metric] = row
        return out

    def model_names(self) -> dict[str, str]:
        return {metric: fit.model_name for metric, fit in self.fits.items()}
