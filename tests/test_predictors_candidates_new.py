"""The non-linear candidates: each learns a simple non-linear target, the new estimators follow the
scikit-learn contract, and a space's own `features` reach the predictors."""

import numpy as np
import pytest
from scipy.stats import kendalltau
from sklearn.linear_model import Ridge
from sklearn.tree import DecisionTreeRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from predictors.candidates import GIVES_STD, build_candidate
from predictors.encoding import ConfigEncoder
from predictors.kernels import LargeColumnScaler, NormalQuantiles, RankEnsembleRegressor
from predictors.selection import fit_predictor
from service.supernets.space import Gene, SearchSpace

NEW = ["svr", "kernel_ridge", "gp_ard", "hist_gradient_boosting", "knn", "rank_ensemble"]


def _rank_ensemble() -> RankEnsembleRegressor:
    return RankEnsembleRegressor(
        [("ridge", Ridge()), ("tree", DecisionTreeRegressor(max_depth=3, random_state=0))]
    )


@parametrize_with_checks(
    [
        _rank_ensemble(),
        LargeColumnScaler(),
    ]
)
def test_sklearn_estimator_contract(estimator, check):
    with threadpool_limits(1):
        check(estimator)


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 2, size=(n, 8)).astype(float)
    y = X[:, 0] * X[:, 1] + 0.5 * X[:, 2] - X[:, 3] * (1 - X[:, 4]) + rng.normal(0, 0.05, n)
    return X, y


@pytest.mark.parametrize("name", NEW)
def test_each_new_candidate_learns_an_interaction(name):
    X, y = _data(120, 0)
    X_test, y_test = _data(200, 1)
    with threadpool_limits(1):
        model = build_candidate(name, random_state=0).fit(X, y)
        tau = kendalltau(y_test, model.predict(X_test))[0]
    assert tau > 0.6, f"{name}: tau {tau:.2f}"
    if name in GIVES_STD:
        mean, std = model.predict(X_test, return_std=True)
        np.testing.assert_allclose(mean, model.predict(X_test))
        assert np.all(std >= 0)


def test_normal_quantiles_takes_fewer_samples_than_quantiles_silently():
    import warnings

    y = np.arange(8.0).reshape(-1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        transformer = NormalQuantiles(n_quantiles=50, output_distribution="normal").fit(y)
    assert transformer.n_quantiles == 50 and transformer.n_quantiles_ == 8


def test_rank_ensemble_predicts_per_row_not_per_batch():
    X, y = _data(80, 2)
    model = build_candidate("rank_ensemble").fit(X, y)
    X_test, _ = _data(30, 3)
    together = model.predict(X_test)
    alone = np.array([model.predict(X_test[i : i + 1])[0] for i in range(len(X_test))])
    np.testing.assert_allclose(together, alone)


def test_large_column_scaler_leaves_indicators_alone():
    X = np.column_stack([np.array([0, 1, 0, 1.0]), np.array([1e6, 2e6, 3e6, 4e6])])
    Z = LargeColumnScaler().fit_transform(X)
    np.testing.assert_array_equal(Z[:, 0], X[:, 0])
    assert abs(Z[:, 1].mean()) < 1e-9 and abs(Z[:, 1].std() - 1) < 1e-9


class _PairSpace(SearchSpace):
    def features(self, config):
        return [float(config["a"] == config["b"]), float(config["a"]) * float(config["b"])]


def test_space_features_are_encoded_after_the_genes():
    space = _PairSpace((Gene("a", (0, 1, 2)), Gene("b", (0, 1, 2))))
    encoder = ConfigEncoder(space, encoding="onehot")
    X = encoder.transform([{"a": 2, "b": 2}, {"a": 1, "b": 0}])
    assert encoder.feature_names()[-2:] == ["space[0]", "space[1]"]
    assert X.shape[1] == len(encoder.feature_names())
    np.testing.assert_array_equal(X[:, -2:], [[1.0, 4.0], [0.0, 0.0]])
    assert SearchSpace((Gene("a", (0, 1)),)).features({"a": 0}) == ()


def test_selection_picks_a_nonlinear_model_for_a_nonlinear_target():
    space = SearchSpace(tuple(Gene(f"g{i}", (0, 1, 2, 3)) for i in range(4)))
    rng = np.random.default_rng(0)
    configs = space.sample(rng, 80)
    y = [float((c["g0"] - 1.5) ** 2 * (c["g1"] - 1.5) ** 2) for c in configs]
    fit = fit_predictor(space, configs, y, candidates=["ridge", "svr", "random_forest"])
    assert fit.model_name != "ridge"


class _NoisyFeatureSpace(SearchSpace):
    """Forty features that are noise: a fixed pseudo-random vector per config."""

    def features(self, config):
        seed = sum(int(config[g.name]) * 4**i for i, g in enumerate(self.genes))
        return np.random.default_rng(seed).normal(size=40).tolist()


def _linear_target(configs):
    return [float(c["g0"] + 2 * c["g1"] - c["g2"] + 0.5 * c["g3"]) for c in configs]


def test_selection_drops_space_features_that_only_add_noise():
    space = _NoisyFeatureSpace(tuple(Gene(f"g{i}", (0, 1, 2, 3)) for i in range(4)))
    configs = space.sample(np.random.default_rng(0), 60)
    fit = fit_predictor(space, configs, _linear_target(configs), candidates=["ridge"])
    assert fit.feature_set == "genes"
    assert set(fit.candidate_scores) == {"ridge", "ridge@genes"}
    held_out = space.sample(np.random.default_rng(1), 200)
    tau = kendalltau(_linear_target(held_out), fit.predict(held_out))[0]
    assert tau > 0.95


def test_selection_keeps_space_features_that_carry_the_signal():
    space = _PairSpace(tuple(Gene(n, (0, 1, 2, 3, 4)) for n in ("a", "b")))
    configs = space.sample(np.random.default_rng(0), 60)
    y = [float(c["a"] == c["b"]) + 0.01 * c["a"] for c in configs]
    fit = fit_predictor(space, configs, y, candidates=["ridge"])
    assert fit.feature_set == "all"


def test_a_space_without_features_is_fitted_once_per_candidate():
    space = SearchSpace(tuple(Gene(f"g{i}", (0, 1, 2, 3)) for i in range(4)))
    configs = space.sample(np.random.default_rng(0), 40)
    fit = fit_predictor(space, configs, _linear_target(configs), candidates=["ridge", "svr"])
    assert set(fit.candidate_scores) == {"ridge", "svr"} and fit.feature_set == "all"


def test_a_genes_only_fit_keeps_its_std_and_survives_saving(tmp_path):
    from predictors.persistence import load_predictor, save_predictor

    space = _NoisyFeatureSpace(tuple(Gene(f"g{i}", (0, 1, 2, 3)) for i in range(4)))
    configs = space.sample(np.random.default_rng(0), 60)
    fit = fit_predictor(space, configs, _linear_target(configs), candidates=["gp"])
    assert fit.feature_set == "genes"
    held_out = space.sample(np.random.default_rng(1), 20)
    std = fit.predict_std(held_out)
    assert std is not None and np.all(std > 0)
    save_predictor(fit, tmp_path / "p.skops")
    loaded = load_predictor(tmp_path / "p.skops", space=space)
    assert loaded.feature_set == "genes"
    np.testing.assert_array_equal(loaded.predict(held_out), fit.predict(held_out))
