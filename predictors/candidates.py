"""The named candidate models model selection chooses among, each a small fixed recipe.

Hyperparameters are either tuned inside the model (RidgeCV's leave-one-out alpha, the GP's marginal
likelihood) or fixed to settings that work at 50-500 samples, so selection costs one
cross-validation per candidate and stays near a second at 100 samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.optimize import minimize
from sklearn.base import RegressorMixin
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingRegressor
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import RidgeCV
from sklearn.neighbors import KNeighborsRegressor
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import QuantileTransformer, StandardScaler
from sklearn.svm import SVR

from predictors.kernels import LargeColumnScaler, NormalQuantiles, RankEnsembleRegressor
from predictors.regressors import (
    ExtraTreesWithStd,
    FeatureTrendRegressor,
    MeanEnsembleRegressor,
    MonotoneRidge,
    RandomForestWithStd,
)

RIDGE_ALPHAS = tuple(np.logspace(-3, 3, 13))
MONOTONE_ALPHA = 3.0  # on standardised columns; picked by hand in an exploratory run, not kept
ENSEMBLE_MEMBERS = ("ridge", "gp", "extra_trees")
GP_MAX_ITERATIONS = 15
RANK_ENSEMBLE_MEMBERS = ("svr", "random_forest", "gp")
SVR_C = 3.0  # on standardised features and target; see docs/predictors.md (NAS-Bench-201 runs)


def short_lbfgs(
    objective: Callable[..., tuple[float, np.ndarray]], theta: np.ndarray, bounds: np.ndarray
) -> tuple[np.ndarray, float]:
    """L-BFGS-B on the GP's log marginal likelihood, capped at a few iterations to stay fast."""
    result = minimize(
        objective,
        theta,
        method="L-BFGS-B",
        jac=True,
        bounds=bounds,
        options={"maxiter": GP_MAX_ITERATIONS},
    )
    return result.x, float(result.fun)


def ridge(random_state: int) -> RegressorMixin:
    """Linear: ridge on standardised features, alpha by efficient leave-one-out CV."""
    return make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))


def monotone(random_state: int) -> RegressorMixin:
    """Linear, one sign for every weight: grows (or falls) with every step up a gene's choices."""
    return MonotoneRidge(alpha=MONOTONE_ALPHA)


def gaussian_process(random_state: int) -> RegressorMixin:
    """Kernel: GP with an RBF + noise kernel fitted by marginal likelihood; gives a std."""
    signal = ConstantKernel(1.0, (1e-3, 1e3)) * RBF(10.0, (1e-1, 1e3))
    kernel = signal + WhiteKernel(0.1, (1e-6, 1e1))
    gp = GaussianProcessRegressor(
        kernel=kernel, optimizer=short_lbfgs, normalize_y=True, random_state=random_state
    )
    return make_pipeline(StandardScaler(), gp)


def extra_trees(random_state: int) -> RegressorMixin:
    """Tree ensemble: extremely randomised trees; the trees' spread is the std."""
    return ExtraTreesWithStd(
        n_estimators=20, max_features=0.5, min_samples_leaf=1, random_state=random_state
    )


def random_forest(random_state: int) -> RegressorMixin:
    """Tree ensemble: random forest; the trees' spread is the std."""
    return RandomForestWithStd(
        n_estimators=20, max_features=0.5, min_samples_leaf=1, random_state=random_state
    )


def gradient_boosting(random_state: int) -> RegressorMixin:
    """Tree ensemble: shallow gradient boosting with shrinkage and row subsampling."""
    return GradientBoostingRegressor(
        n_estimators=50, learning_rate=0.15, max_depth=2, subsample=0.8, random_state=random_state
    )


def mlp(random_state: int) -> RegressorMixin:
    """Small MLP (one hidden layer, L-BFGS) on standardised features and target."""
    net = MLPRegressor(
        hidden_layer_sizes=(16,),
        alpha=1.0,
        solver="lbfgs",
        max_iter=100,
        random_state=random_state,
    )
    return TransformedTargetRegressor(
        regressor=make_pipeline(StandardScaler(), net), transformer=StandardScaler()
    )


def svr(random_state: int) -> RegressorMixin:
    """Kernel: RBF support-vector regression on a normal-quantile transform of the target.

    The quantile transform spreads the crowded top of an accuracy distribution (most networks
    within a point of the best, a long tail below), which is where ranking matters; indicator
    columns stay unscaled (`LargeColumnScaler`). NB201 CIFAR-10, 100 samples: tau 0.77 against
    0.60 with a standardised target (docs/predictors.md)."""
    model = make_pipeline(
        LargeColumnScaler(), SVR(kernel="rbf", C=SVR_C, gamma="scale", epsilon=0.05)
    )
    return TransformedTargetRegressor(regressor=model, transformer=_normal_quantiles())


def _normal_quantiles() -> QuantileTransformer:
    return NormalQuantiles(n_quantiles=50, output_distribution="normal")


def kernel_ridge(random_state: int) -> RegressorMixin:
    """Kernel: RBF kernel ridge (length scale from the number of columns) on standardised data."""
    model = make_pipeline(StandardScaler(), KernelRidge(alpha=0.3, kernel="rbf"))
    return TransformedTargetRegressor(regressor=model, transformer=StandardScaler())


def gp_ard(random_state: int) -> RegressorMixin:
    """Kernel: GP with one RBF length scale per column (per gene choice and feature); gives a std.

    Slower than `gp` (its gradient grows with the columns): opt-in."""
    return make_pipeline(
        StandardScaler(),
        _ArdGaussianProcess(optimizer=short_lbfgs, normalize_y=True, random_state=random_state),
    )


class _ArdGaussianProcess(GaussianProcessRegressor):
    """GaussianProcessRegressor whose RBF gets one length scale per input column at fit time."""

    def fit(self, X: Any, y: Any) -> _ArdGaussianProcess:
        given: Any = self.kernel  # type: ignore[has-type]
        if given is None:
            n_columns = np.asarray(X).reshape(len(X), -1).shape[1]
            signal = ConstantKernel(1.0, (1e-3, 1e3)) * RBF(np.full(n_columns, 10.0), (1e-1, 1e3))
            self.kernel = signal + WhiteKernel(0.1, (1e-6, 1e1))
        try:
            return super().fit(X, y)
        finally:
            self.kernel = given  # the fitted kernel is `kernel_`; the parameter stays as given


def hist_gradient_boosting(random_state: int) -> RegressorMixin:
    """Tree ensemble: histogram gradient boosting, small trees, no early stopping (small data)."""
    return HistGradientBoostingRegressor(
        max_iter=60,
        learning_rate=0.1,
        max_leaf_nodes=8,
        min_samples_leaf=4,
        early_stopping=False,
        random_state=random_state,
    )


def knn(random_state: int) -> RegressorMixin:
    """Nearest neighbours: distance-weighted mean of the 5 nearest standardised rows."""
    return make_pipeline(StandardScaler(), KNeighborsRegressor(n_neighbors=5, weights="distance"))


def rank_ensemble(random_state: int) -> RegressorMixin:
    """Rank average of SVR, random forest and GP (`RankEnsembleRegressor`); members' spread is
    the std."""
    return RankEnsembleRegressor(
        [(name, CANDIDATES[name](random_state)) for name in RANK_ENSEMBLE_MEMBERS]
    )


def ensemble(random_state: int) -> RegressorMixin:
    """Mean of ridge, GP and extra trees; the members' spread is the std."""
    return MeanEnsembleRegressor(
        [(name, CANDIDATES[name](random_state)) for name in ENSEMBLE_MEMBERS]
    )


CANDIDATES: dict[str, Callable[[int], RegressorMixin]] = {
    "ridge": ridge,
    "monotone": monotone,
    "gp": gaussian_process,
    "extra_trees": extra_trees,
    "random_forest": random_forest,
    "gradient_boosting": gradient_boosting,
    "mlp": mlp,
    "ensemble": ensemble,
    "svr": svr,
    "kernel_ridge": kernel_ridge,
    "gp_ard": gp_ard,
    "hist_gradient_boosting": hist_gradient_boosting,
    "knn": knn,
    "rank_ensemble": rank_ensemble,
}
# mlp, gradient_boosting and random_forest are opt-in: each costs ~0.5 s CPU per selection at
# 100 samples and rarely wins on rank; the defaults keep selection + final fit within ~1 s.
DEFAULT_CANDIDATES = ("ridge", "monotone", "gp", "extra_trees", "ensemble")
# The monotone model takes the exact features as columns with the same sign as the genes (MACs
# grow with every choice) instead of after a free trend on them, which would undo its prior.
NO_TREND = frozenset({"monotone"})
GIVES_STD = frozenset({"gp", "gp_ard", "extra_trees", "random_forest", "ensemble", "rank_ensemble"})


def build_candidate(name: str, random_state: int = 0, n_trend: int = 0) -> RegressorMixin:
    """A fresh, unfitted candidate model by name; with `n_trend`, fitted after a linear trend on
    the last `n_trend` columns (the caller's exact features, see `FeatureTrendRegressor`)."""
    check_candidate_names([name])
    model = CANDIDATES[name](random_state)
    return FeatureTrendRegressor(model, n_trend) if n_trend and name not in NO_TREND else model


def check_candidate_names(names: Sequence[str]) -> None:
    """Raise a ValueError naming any unknown or repeated candidate."""
    if isinstance(names, str):
        raise ValueError(f"candidates must be a list of names, not the string {names!r}")
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise ValueError(f"unknown candidate(s) {unknown}; choose from {sorted(CANDIDATES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"candidates {list(names)} name a model more than once")
    if not names:
        raise ValueError(f"give at least one candidate; choose from {sorted(CANDIDATES)}")
