"""Save and load fitted predictors with skops, trusting only the types our candidates are made of.

A file is a skops archive holding the estimator and a JSON description (search space, encoding,
scores). Loading refuses any type outside `TRUSTED_TYPES`, so a crafted file cannot run code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import skops.io as sio

from predictors.encoding import ConfigEncoder, ConfigFeatures
from predictors.selection import PredictorFit
from service.supernets.space import SearchSpace

FORMAT_VERSION = 1

# Types a saved candidate holds beyond skops' default trusted set (sklearn estimators, numpy);
# tests check every candidate against this list.
TRUSTED_TYPES = frozenset(
    {
        "predictors.candidates._ArdGaussianProcess",
        "predictors.candidates.short_lbfgs",
        "predictors.kernels.LargeColumnScaler",
        "predictors.kernels.NormalQuantiles",
        "predictors.kernels.RankEnsembleRegressor",
        "predictors.regressors.ExtraTreesWithStd",
        "predictors.regressors.FeatureTrendRegressor",
        "predictors.regressors.MeanEnsembleRegressor",
        "predictors.regressors.MonotoneRidge",
        "predictors.regressors.RandomForestWithStd",
        "sklearn.gaussian_process.kernels.ConstantKernel",
        "sklearn.gaussian_process.kernels.Product",
        "sklearn.gaussian_process.kernels.RBF",
        "sklearn.gaussian_process.kernels.Sum",
        "sklearn.gaussian_process.kernels.WhiteKernel",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.tree._tree.Tree",
        "sklearn.utils._bunch.Bunch",
    }
)


class UntrustedPredictorFile(ValueError):
    """The file holds types a predictor never contains; it was not loaded."""


def save_predictor(fit: PredictorFit, path: str | Path) -> None:
    """Write `fit` to `path` (a skops archive); the `features` callable is not stored."""
    meta = {
        "format_version": FORMAT_VERSION,
        "space": fit.encoder.space.to_json(),
        "fit": fit.to_json(),
    }
    sio.dump({"estimator": fit.estimator, "meta": json.dumps(meta)}, Path(path))


def untrusted_types(path: str | Path) -> list[str]:
    """Types in the file that loading would refuse (empty for files `save_predictor` wrote)."""
    return sorted(set(sio.get_untrusted_types(file=Path(path))) - TRUSTED_TYPES)


def load_predictor(
    path: str | Path, *, features: ConfigFeatures | None = None, space: SearchSpace | None = None
) -> PredictorFit:
    """Load a predictor saved by `save_predictor`; pass the same `features` it was fitted with,
    and the space itself when its class gives features of its own (the file stores only genes)."""
    refused = untrusted_types(path)
    if refused:
        raise UntrustedPredictorFile(f"{path} holds types a predictor never contains: {refused}")
    trusted = sorted(set(sio.get_untrusted_types(file=Path(path))))
    content: dict[str, Any] = sio.load(Path(path), trusted=trusted)
    meta = json.loads(content["meta"])
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} has format version {meta.get('format_version')}, expected 1")
    info = meta["fit"]
    encoding = info["encoding"]
    if (encoding["caller_features"] is None) != (features is None):
        needed = "needs" if features is None else "was fitted without"
        raise ValueError(f"{path} {needed} the caller's features(config) callable")
    if space is not None and space.to_json() != meta["space"]:
        raise ValueError(f"{path} was fitted on another search space than the one given")
    encoder = ConfigEncoder(
        space if space is not None else SearchSpace.from_json(meta["space"]),
        encoding=encoding["encoding"],
        derived=encoding["derived"],
        features=features,
    )
    return PredictorFit(
        model_name=info["model_name"],
        estimator=content["estimator"],
        encoder=encoder,
        scores=_scores_from_json(info["scores"]),
        n_train=int(info["n_train"]),
        fit_seconds=float(info["fit_seconds"]),
        random_state=int(info["random_state"]),
        candidate_scores={k: _scores_from_json(v) for k, v in info["candidates"].items()},
        feature_set=info.get("feature_set", "all"),
    )


def _scores_from_json(scores: dict[str, float | None]) -> dict[str, float]:
    return {k: float("nan") if v is None else float(v) for k, v in scores.items()}
