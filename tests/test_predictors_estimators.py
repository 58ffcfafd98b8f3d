"""The predictors' regressors follow the scikit-learn estimator contract and report a usable std."""

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.tree import DecisionTreeRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from predictors.candidates import CANDIDATES, build_candidate
from predictors.regressors import (
    ExtraTreesWithStd,
    FeatureTrendRegressor,
    MeanEnsembleRegressor,
    MonotoneRidge,
    RandomForestWithStd,
)


def _ensemble() -> MeanEnsembleRegressor:
    return MeanEnsembleRegressor(
        [("ridge", Ridge()), ("tree", DecisionTreeRegressor(max_depth=3, random_state=0))]
    )


# The same known limitation scikit-learn itself lists for RandomForestRegressor: with bootstrap,
# sample weights are not equivalent to repeating samples (its meta-issue #16298).
BOOTSTRAP_WEIGHTS = "sample_weight is not equivalent to removing/repeating samples (bootstrap)"


def _expected_failures(estimator) -> dict[str, str]:
    if isinstance(estimator, RandomForestWithStd):
        return {
            "check_sample_weight_equivalence_on_dense_data": BOOTSTRAP_WEIGHTS,
            "check_sample_weight_equivalence_on_sparse_data": BOOTSTRAP_WEIGHTS,
        }
    return {}


@parametrize_with_checks(
    [
        ExtraTreesWithStd(n_estimators=5, random_state=0),
        RandomForestWithStd(n_estimators=5, random_state=0),
        _ensemble(),
        # The GP with our capped optimizer, unwrapped from its scaling Pipeline: sklearn's Pipeline
        # fits its steps in place by design, which the parameter-mutation checks reject.
        build_candidate("gp")[-1],
        build_candidate("ensemble"),
        FeatureTrendRegressor(Ridge(), n_trend=1),
        build_candidate("extra_trees", n_trend=1),
        MonotoneRidge(),
    ],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_estimator_contract(estimator, check):
    with threadpool_limits(1):  # small matrices: extra BLAS threads only contend on a shared box
        check(estimator)


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, 4))
    y = X[:, 0] - 2 * X[:, 1] + 0.5 * X[:, 2] * X[:, 3] + rng.normal(0, 0.1, 60)
    return X, y


@pytest.mark.parametrize("name", ["gp", "extra_trees", "random_forest", "ensemble"])
def test_return_std_matches_predict_and_is_nonnegative(name):
    X, y = _data()
    model = build_candidate(name).fit(X, y)
    X_new = _data(seed=1)[0]
    mean, std = model.predict(X_new, return_std=True)
    np.testing.assert_allclose(mean, model.predict(X_new))
    assert std.shape == (len(X_new),)
    assert np.all(std >= 0) and np.any(std > 0)


def test_tree_std_is_spread_of_individual_trees():
    X, y = _data()
    forest = RandomForestWithStd(n_estimators=7, random_state=0).fit(X, y)
    per_tree = np.stack([tree.predict(X) for tree in forest.estimators_], axis=1)
    _, std = forest.predict(X, return_std=True)
    np.testing.assert_allclose(std, per_tree.std(axis=1))


def test_ensemble_std_is_spread_of_members():
    X, y = _data()
    ensemble = _ensemble().fit(X, y)
    members = ensemble.transform(X)
    mean, std = ensemble.predict(X, return_std=True)
    np.testing.assert_allclose(mean, members.mean(axis=1))
    np.testing.assert_allclose(std, members.std(axis=1))


@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_every_candidate_learns_a_simple_target(name):
    X, y = _data()
    X_test, y_test = _data(seed=2)
    model = build_candidate(name, random_state=0).fit(X, y)
    assert np.corrcoef(model.predict(X_test), y_test)[0, 1] > 0.7


def test_unknown_candidate_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown candidate.*choose from"):
        build_candidate("xgboost")


def test_feature_trend_keeps_a_linear_dependence_that_ridge_spreads_out():
    """y follows the last column exactly; 60 noisy one-hot-like columns hide it from ridge."""
    rng = np.random.default_rng(0)
    X = np.hstack([rng.integers(0, 2, (300, 60)).astype(float), rng.uniform(1, 10, (300, 1))])
    y = 3 * X[:, -1] + 0.2 * X[:, 0]
    plain = build_candidate("ridge").fit(X[:60], y[:60])
    trend = build_candidate("ridge", n_trend=1).fit(X[:60], y[:60])
    error = {
        "plain": np.abs(plain.predict(X[60:]) - y[60:]).mean(),
        "trend": np.abs(trend.predict(X[60:]) - y[60:]).mean(),
    }
    assert error["trend"] < 0.1 * error["plain"]


def test_feature_trend_passes_the_regressor_std_through():
    X, y = _data()
    model = build_candidate("gp", n_trend=2).fit(X, y)
    mean, std = model.predict(X, return_std=True)
    np.testing.assert_allclose(mean, model.predict(X))
    inner_std = model.regressor_.predict(X, return_std=True)[1]
    np.testing.assert_allclose(std, inner_std)


def test_feature_trend_needs_as_many_columns_as_it_trends_on():
    X, y = _data()
    with pytest.raises(ValueError, match=r"n_trend=5 must be between 1 and the 4 columns"):
        FeatureTrendRegressor(Ridge(), n_trend=5).fit(X, y)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_monotone_ridge_never_falls_against_its_fitted_direction(sign):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 2, (80, 6)).astype(float)
    y = sign * (X @ np.array([3.0, 2.0, 1.0, 0.5, 0.0, 0.0])) + rng.normal(0, 0.5, 80)
    model = MonotoneRidge().fit(X, y)
    assert model.sign_ == sign
    base = np.zeros((1, 6))
    for column in range(6):
        stepped = base.copy()
        stepped[0, column] = 1.0
        assert sign * (model.predict(stepped) - model.predict(base))[0] >= 0
    assert np.corrcoef(model.predict(X), y)[0, 1] > 0.9


def test_monotone_ignores_the_feature_trend():
    assert isinstance(build_candidate("monotone", n_trend=2), MonotoneRidge)
