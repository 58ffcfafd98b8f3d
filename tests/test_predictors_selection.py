"""fit_predictor picks a model by cross-validated Kendall τ; metrics agree with scipy/sklearn."""

import json

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr
from sklearn.model_selection import KFold, cross_val_predict
from threadpoolctl import threadpool_limits

from predictors import PredictorFit, fit_predictor, rank_quality
from predictors.candidates import build_candidate
from predictors.encoding import ConfigEncoder
from predictors.selection import out_of_fold_predictions
from service.supernets.elastic_mbv3 import ArchSpec

SPACE = ArchSpec().search_space()


def _block_cost_target(configs, seed=0):
    """Noisy sum of per-block costs (by stage, kernel, expand) with a stage-depth interaction."""
    rng = np.random.default_rng(seed)
    cost = {
        (s, k, e): rng.uniform(0.5, 2.0) * (s + 1)
        for s in range(4)
        for k in SPACE.gene("s0.b0.kernel").choices
        for e in SPACE.gene("s0.b0.expand").choices
    }
    values = []
    for config in configs:
        total = 0.0
        for s in range(4):
            depth = config[f"s{s}.depth"]
            total += sum(
                cost[(s, config[f"s{s}.b{b}.kernel"], config[f"s{s}.b{b}.expand"])]
                for b in range(depth)
            )
        total += 0.8 * config["s1.depth"] * config["s3.depth"]
        values.append(total)
    y = np.array(values)
    return y + rng.normal(0, 0.05 * y.std(), len(y))


@pytest.fixture(scope="module")
def data():
    configs = SPACE.sample(np.random.default_rng(7), 300)
    return configs, _block_cost_target(configs)


@pytest.fixture(scope="module")
def fitted(data) -> PredictorFit:
    configs, y = data
    return fit_predictor(SPACE, configs[:100], y[:100], random_state=0)


def test_selection_ranks_held_out_networks_well(data, fitted):
    configs, y = data
    held_out = rank_quality(y[100:], fitted.predict(configs[100:]))
    assert fitted.scores["kendall_tau"] > 0.6
    assert held_out["kendall_tau"] > 0.6
    best = max(fitted.candidate_scores.values(), key=lambda s: s["kendall_tau"])
    assert fitted.scores == best


def test_fit_reports_scores_and_describes_itself_as_json(fitted):
    assert set(fitted.scores) == {"kendall_tau", "spearman", "mape", "rmse"}
    assert fitted.n_train == 100
    assert fitted.fit_seconds > 0
    described = json.loads(json.dumps(fitted.to_json()))
    assert described["model_name"] == fitted.model_name
    assert described["scores"]["kendall_tau"] == pytest.approx(fitted.scores["kendall_tau"])
    assert set(described["candidates"]) == set(fitted.candidate_scores)


def test_predict_std_only_for_models_with_uncertainty(data):
    configs, y = data
    ridge = fit_predictor(SPACE, configs[:30], y[:30], candidates=["ridge"])
    gp = fit_predictor(SPACE, configs[:30], y[:30], candidates=["gp"])
    assert ridge.predict_std(configs[30:35]) is None
    std = gp.predict_std(configs[30:35])
    assert std is not None and std.shape == (5,) and np.all(std > 0)


def test_same_seed_gives_same_predictor(data):
    configs, y = data
    first = fit_predictor(SPACE, configs[:40], y[:40], candidates=["extra_trees"], random_state=3)
    again = fit_predictor(SPACE, configs[:40], y[:40], candidates=["extra_trees"], random_state=3)
    np.testing.assert_array_equal(first.predict(configs[40:]), again.predict(configs[40:]))


def test_ensemble_out_of_fold_predictions_equal_a_real_cross_validation(data):
    configs, y = data
    X = ConfigEncoder(SPACE).transform(configs[:40])
    shortcut = out_of_fold_predictions(["ensemble"], X, y[:40], random_state=0)["ensemble"]
    folds = KFold(n_splits=5, shuffle=True, random_state=0)
    with threadpool_limits(1):
        direct = cross_val_predict(build_candidate("ensemble", 0), X, y[:40], cv=folds)
    np.testing.assert_allclose(shortcut, direct, rtol=1e-6)


def test_caller_features_are_used(data):
    configs, y = data
    fit = fit_predictor(
        SPACE, configs[:20], y[:20], features=lambda c: [c["s0.depth"] * 2.0], candidates=["ridge"]
    )
    assert fit.encoder.feature_names()[-1] == "feature[0]"
    assert fit.predict(configs[20:25]).shape == (5,)


def test_rank_quality_matches_scipy_and_sklearn_definitions():
    rng = np.random.default_rng(0)
    y_true = rng.uniform(1, 10, 50)
    y_pred = y_true + rng.normal(0, 2, 50)
    quality = rank_quality(y_true, y_pred)
    assert quality["kendall_tau"] == pytest.approx(kendalltau(y_true, y_pred).statistic)
    assert quality["spearman"] == pytest.approx(spearmanr(y_true, y_pred).statistic)
    assert quality["mape"] == pytest.approx(np.mean(np.abs(y_pred - y_true) / np.abs(y_true)))
    assert quality["rmse"] == pytest.approx(np.sqrt(np.mean((y_pred - y_true) ** 2)))


def test_rank_quality_on_known_inputs():
    assert rank_quality([1, 2, 4], [1.1, 1.8, 4])["mape"] == pytest.approx(0.2 / 3)
    assert rank_quality([1, 2, 3, 4], [10, 20, 30, 40])["kendall_tau"] == 1.0
    assert rank_quality([1, 2, 3, 4], [4, 3, 2, 1])["kendall_tau"] == -1.0
    # One discordant pair of six: (5 - 1) / 6.
    assert rank_quality([1, 2, 3, 4], [1, 2, 4, 3])["kendall_tau"] == pytest.approx(4 / 6)
    assert rank_quality([1, 2, 3], [5, 5, 5])["kendall_tau"] == 0.0


@pytest.mark.parametrize(
    ("configs_slice", "y", "message"),
    [
        (slice(0, 10), np.ones(9), "10 configs but 9 target values"),
        (slice(0, 4), np.arange(4.0), "at least 5"),
        (slice(0, 6), np.array([1, 2, np.nan, 4, 5, 6.0]), "NaN or infinite value.*index 2"),
        (slice(0, 6), np.ones((6, 1)), "must be 1-D"),
    ],
)
def test_bad_training_data_is_a_clear_error(data, configs_slice, y, message):
    configs, _ = data
    with pytest.raises(ValueError, match=message):
        fit_predictor(SPACE, configs[configs_slice], y)


def test_bad_candidates_are_a_clear_error(data):
    configs, y = data
    with pytest.raises(ValueError, match="unknown candidate"):
        fit_predictor(SPACE, configs[:10], y[:10], candidates=["ridge", "xgboost"])
    with pytest.raises(ValueError, match="at least one candidate"):
        fit_predictor(SPACE, configs[:10], y[:10], candidates=[])
    with pytest.raises(ValueError, match="not the string"):
        fit_predictor(SPACE, configs[:10], y[:10], candidates="ridge")


def test_rank_quality_rejects_bad_input():
    with pytest.raises(ValueError, match="3 values but y_pred has 2"):
        rank_quality([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="finite"):
        rank_quality([1, 2, np.inf], [1, 2, 3])
