"""`MetricName`: the one reading of `name@device` metric names."""

from __future__ import annotations

import pytest

from service.jobs.results import latency_method
from service.search.metrics import MetricName


@pytest.mark.parametrize(
    ("text", "name", "device"),
    [
        ("accuracy", "accuracy", None),
        ("macs", "macs", None),
        ("latency@host", "latency", "host"),
        ("latency@jetson-nano.1", "latency", "jetson-nano.1"),
    ],
)
def test_parse_then_str_round_trips(text: str, name: str, device: str | None) -> None:
    parsed = MetricName.parse(text)
    assert (parsed.name, parsed.device) == (name, device)
    assert str(parsed) == text


def test_latency_names_its_device() -> None:
    assert str(MetricName.latency("edge")) == "latency@edge"
    assert MetricName.latency("edge") == MetricName.parse("latency@edge")
    assert MetricName.parse("latency@edge").is_latency
    assert not MetricName.parse("latency").is_latency  # no device: not a measurable latency
    assert not MetricName.parse("accuracy").is_latency


def test_is_a_frozen_value() -> None:
    with pytest.raises(AttributeError):
        MetricName.parse("accuracy").name = "macs"  # type: ignore[misc]
    assert len({MetricName.parse("latency@host"), MetricName.latency("host")}) == 1


def test_latency_method_reads_the_device_from_the_name() -> None:
    kinds = {"host": "host", "edge": "agent", "phone": "lut-only"}
    assert latency_method("latency@host", "measured", kinds) == "host"
    assert latency_method("latency@edge", "measured", kinds) == "agent"
    assert latency_method("latency@phone", "predicted", kinds) == "lut"
    assert latency_method("latency@phone", "measured", kinds) is None
    assert latency_method("accuracy", "measured", kinds) is None
