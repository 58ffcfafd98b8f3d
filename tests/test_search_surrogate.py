"""The search engine's predictors take the exact metrics (MACs, params, ...) as features."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau

from service.search.encoding import SpaceEncoding
from service.search.exact import ExactMetrics
from service.search.surrogate import ExactFeatures, MetricModels
from service.supernets.elastic_mbv3 import ArchSpec
from service.supernets.space import Config


@pytest.fixture(scope="module")
def encoding() -> SpaceEncoding:
    return SpaceEncoding(ArchSpec().search_space())


def interacting_cost(encoding: SpaceEncoding):
    """A cost with products of genes (like kernel² × expand per block): not linear in one-hot."""

    def exact(config: Config) -> dict[str, float]:
        row = encoding.row_of(config)
        active = encoding.active(row[None, :])[0]
        scale = (row + 1.0) * active
        return {"macs": float(1e6 * (1 + np.sum(scale[:-1] * scale[1:])))}

    return exact


def fitted_models(encoding: SpaceEncoding, exact: ExactMetrics | None, n: int = 60):
    rng = np.random.default_rng(0)
    rows = encoding.latin_hypercube(n + 200, rng)
    configs = [encoding.config_of(r) for r in rows]
    truth = ExactMetrics(encoding, interacting_cost(encoding)).columns(rows, ["macs"])["macs"]
    target = truth / 1e6 + 2.0 * rows[:, 0]  # e.g. latency: MACs plus a per-gene overhead
    models = MetricModels(
        encoding, ["latency"], seed=0, exact_features=ExactFeatures(exact) if exact else None
    )
    models.refit(configs[:n], {"latency": target[:n]})
    return models, rows[n:], configs[n:], target[n:]


def test_exact_metrics_are_features_of_every_fit(encoding: SpaceEncoding) -> None:
    exact = ExactMetrics(encoding, interacting_cost(encoding))
    models, _, held_out, _ = fitted_models(encoding, exact)
    encoder = models.fits["latency"].encoder  # type: ignore[attr-defined]
    X = encoder.transform(held_out[:3])
    assert X.shape[1] == len(encoder.base_feature_names()) + 1
    assert X[:, -1].tolist() == [exact.of_config(c)["macs"] for c in held_out[:3]]


def test_fast_path_stays_on_and_matches_the_fits(encoding: SpaceEncoding) -> None:
    exact = ExactMetrics(encoding, interacting_cost(encoding))
    models, rows, configs, _ = fitted_models(encoding, exact)
    assert models._fast  # the linear map covers the gene columns; exact ones are appended
    fast, _ = models.predict_rows(rows)
    slow, _ = models.predict(configs)
    np.testing.assert_allclose(fast["latency"], slow["latency"], rtol=1e-9)


def test_exact_features_lift_rank_of_a_metric_that_follows_them(encoding: SpaceEncoding) -> None:
    taus = {}
    for name, exact in {
        "without": None,
        "with": ExactMetrics(encoding, interacting_cost(encoding)),
    }.items():
        models, rows, _, target = fitted_models(encoding, exact)
        predicted, _ = models.predict_rows(rows)
        taus[name] = kendalltau(target, predicted["latency"]).statistic
    assert taus["with"] > 0.95
    assert taus["with"] > taus["without"] + 0.1
