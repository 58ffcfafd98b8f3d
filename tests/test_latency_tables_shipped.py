"""The shipped host LUTs cover the built-in space and their calibrations load and predict."""

from __future__ import annotations

import numpy as np
import pytest

from latency_tables import LatencyTableError, estimate_latency
from latency_tables.shipped import shipped_calibration, shipped_lut
from service.supernets.builtin import MobileNetV3DigitsSupernet
from service.supernets.elastic_mbv3 import ElasticMobileNetV3


@pytest.fixture(scope="module")
def supernet() -> MobileNetV3DigitsSupernet:
    return MobileNetV3DigitsSupernet(ElasticMobileNetV3())


@pytest.mark.parametrize("device", ["host", "host-thread-cpu"])
def test_shipped_lut_covers_the_builtin_space(
    supernet: MobileNetV3DigitsSupernet, device: str
) -> None:
    lut = shipped_lut("mbv3-digits", device)
    assert lut.missing_keys(supernet.all_layer_keys()) == []
    assert (lut.descriptor.threads, lut.descriptor.batch_size) == (1, 32)
    assert lut.measurement.reference_network is not None
    assert lut.measurement.command and "latency_estimation" in lut.measurement.command


@pytest.mark.parametrize("device", ["host", "host-thread-cpu"])
def test_shipped_calibration_predicts_positive_latencies(
    supernet: MobileNetV3DigitsSupernet, device: str
) -> None:
    calibration = shipped_calibration("mbv3-digits", device)
    assert calibration is not None
    configs = supernet.space.sample(np.random.default_rng(0), 20)
    keys = [supernet.layer_keys(c) for c in configs]
    predicted = calibration.predict(keys)
    raw = np.array([estimate_latency(calibration.lut, k) for k in keys])
    assert np.all(predicted > 0) and np.all(np.isfinite(predicted))
    assert np.all(predicted / raw < 5) and np.all(predicted / raw > 0.2)


def test_unknown_shipped_table_names_the_available_ones() -> None:
    with pytest.raises(LatencyTableError, match=r"available: \[.*mbv3-digits__host\.lut\.json"):
        shipped_lut("mbv3-digits", "note10")
