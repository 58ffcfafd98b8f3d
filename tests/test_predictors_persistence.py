"""Saved predictors load back (skops, trusted types only) and predict exactly as before."""

import zipfile

import numpy as np
import pytest
import skops.io as sio

from predictors import fit_predictor, load_predictor, save_predictor
from predictors.candidates import CANDIDATES
from predictors.persistence import TRUSTED_TYPES, UntrustedPredictorFile, untrusted_types
from service.supernets.elastic_mbv3 import ArchSpec

SPACE = ArchSpec().search_space()


@pytest.fixture(scope="module")
def data():
    configs = SPACE.sample(np.random.default_rng(3), 40)
    y = np.array([sum(float(v) for v in c.values()) for c in configs])
    return configs, y + np.random.default_rng(4).normal(0, 0.5, len(y))


@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_round_trip_gives_identical_predictions(tmp_path, data, name):
    configs, y = data
    fit = fit_predictor(SPACE, configs[:30], y[:30], candidates=[name])
    path = tmp_path / "predictor.skops"
    save_predictor(fit, path)
    assert untrusted_types(path) == []
    assert set(sio.get_untrusted_types(file=path)) <= TRUSTED_TYPES
    loaded = load_predictor(path)
    np.testing.assert_array_equal(loaded.predict(configs[30:]), fit.predict(configs[30:]))
    before, after = fit.predict_std(configs[30:]), loaded.predict_std(configs[30:])
    if before is None:
        assert after is None
    else:
        np.testing.assert_array_equal(after, before)
    assert loaded.to_json() == fit.to_json()


def test_caller_features_must_be_supplied_again(tmp_path, data):
    configs, y = data
    features = lambda c: [float(c["s0.depth"])]  # noqa: E731
    fit = fit_predictor(SPACE, configs, y, features=features, candidates=["ridge"])
    path = tmp_path / "predictor.skops"
    save_predictor(fit, path)
    with pytest.raises(ValueError, match="needs the caller's features"):
        load_predictor(path)
    loaded = load_predictor(path, features=features)
    np.testing.assert_array_equal(loaded.predict(configs), fit.predict(configs))


def test_file_with_foreign_types_is_refused(tmp_path):
    path = tmp_path / "crafted.skops"
    sio.dump({"estimator": zipfile.ZipFile, "meta": "{}"}, path)
    with pytest.raises(UntrustedPredictorFile, match=r"zipfile\.ZipFile"):
        load_predictor(path)
