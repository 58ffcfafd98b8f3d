"""The calibrated estimator: learns known relations, reports CV error, persists as plain JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from latency_tables import (
    CalibratedLatencyEstimator,
    LatencyEntry,
    LatencyTable,
    LatencyTableError,
    MissingOpKeysError,
    estimate_latency,
)
from latency_tables.calibration import op_group
from service.supernets.builtin import MobileNetV3DigitsSupernet
from service.supernets.elastic_mbv3 import ElasticMobileNetV3


@pytest.fixture(scope="module")
def supernet() -> MobileNetV3DigitsSupernet:
    return MobileNetV3DigitsSupernet(ElasticMobileNetV3())


@pytest.fixture(scope="module")
def lut(supernet: MobileNetV3DigitsSupernet) -> LatencyTable:
    rng = np.random.default_rng(0)
    entries = {
        key: LatencyEntry(mean_ms=float(rng.uniform(0.1, 2.0)), count=10)
        for key in supernet.all_layer_keys()
    }
    return LatencyTable(
        device="host",
        descriptor={"runtime": "onnxruntime", "threads": 1, "batch_size": 32},
        family="mbv3-digits",
        measurement={"method": "synthetic"},
        entries=entries,
    )


@pytest.fixture(scope="module")
def networks(supernet: MobileNetV3DigitsSupernet) -> list[list[str]]:
    configs = supernet.space.sample(np.random.default_rng(1), 140)
    return [supernet.layer_keys(c) for c in configs]


def test_scale_and_offset_are_learned(lut: LatencyTable, networks: list[list[str]]) -> None:
    raw = np.array([estimate_latency(lut, keys) for keys in networks])
    noise = np.random.default_rng(2).normal(1.0, 0.01, len(raw))
    measured = (1.15 * raw + 0.8) * noise
    estimator = CalibratedLatencyEstimator(lut).fit(networks[:80], measured[:80])
    predicted = estimator.predict(networks[80:])
    relative_error = np.abs(predicted - measured[80:]) / measured[80:]
    assert relative_error.mean() < 0.02
    assert estimator.cv_scores_[estimator.model_].within_10pct == 1.0
    assert estimator.raw_scores_.mape > 10.0  # the raw sum is off by ~15 %


def test_per_stage_slowdown_needs_and_gets_the_group_model(
    lut: LatencyTable, networks: list[list[str]]
) -> None:
    slow_group = sorted({op_group(k) for keys in networks for k in keys if "expanded" in k})[0]

    def truth(keys: list[str]) -> float:
        return sum(
            lut.entries[k].mean_ms * (2.0 if op_group(k) == slow_group else 1.05) for k in keys
        )

    measured = np.array([truth(keys) for keys in networks])
    estimator = CalibratedLatencyEstimator(lut, statistic="mean").fit(networks[:80], measured[:80])
    assert estimator.model_ == "groups"
    assert estimator.cv_scores_["groups"].mape < estimator.cv_scores_["affine"].mape
    predicted = estimator.predict(networks[80:])
    assert np.abs(predicted - measured[80:]).max() / measured[80:].min() < 0.05


def test_calibration_round_trips_through_json_and_refuses_another_table(
    lut: LatencyTable, networks: list[list[str]]
) -> None:
    raw = np.array([estimate_latency(lut, keys) for keys in networks])
    estimator = CalibratedLatencyEstimator(lut).fit(networks[:40], 1.2 * raw[:40] + 0.3)
    saved = json.loads(json.dumps(estimator.to_json()))
    restored = CalibratedLatencyEstimator.from_json(saved, lut)
    np.testing.assert_allclose(restored.predict(networks[40:]), estimator.predict(networks[40:]))
    other = lut.model_copy(update={"device": "other"})
    with pytest.raises(LatencyTableError, match="fitted on another table"):
        CalibratedLatencyEstimator.from_json(saved, other)
    with pytest.raises(LatencyTableError, match="malformed"):
        CalibratedLatencyEstimator.from_json({**saved, "coef": "x"}, lut)


def test_bad_calibration_input_is_rejected(lut: LatencyTable, networks: list[list[str]]) -> None:
    with pytest.raises(LatencyTableError, match="networks but"):
        CalibratedLatencyEstimator(lut).fit(networks[:20], [1.0] * 19)
    with pytest.raises(LatencyTableError, match="at least 10 networks"):
        CalibratedLatencyEstimator(lut).fit(networks[:5], [1.0] * 5)
    partial = lut.model_copy(update={"entries": dict(list(lut.entries.items())[1:])})
    with pytest.raises(MissingOpKeysError):
        CalibratedLatencyEstimator(partial).fit(networks[:20], [1.0] * 20)
