"""Interleaved onnxruntime timing: passes, the fastest pass kept, extra passes for noisy models."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from service.evaluation.latency import OnnxModel, measure_interleaved, measure_onnx_latency
from service.evaluation.onnx_export import export_onnx
from service.evaluation.profile import DeviceProfile, LatencyStats

QUICK = DeviceProfile(
    name="ci", threads=1, batch_size=2, warmup_runs=1, warmup_seconds=0.0, timed_runs=4
)


def _model(width: int) -> OnnxModel:
    module = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 4, 1))
    return OnnxModel(export_onnx(module, torch.zeros(QUICK.batch_size, 3, 16, 16)), (3, 16, 16))


@pytest.fixture(scope="module")
def models() -> dict[str, OnnxModel]:
    return {"narrow": _model(4), "wide": _model(64)}


def test_every_model_gets_its_passes_and_keeps_the_fastest(
    models: dict[str, OnnxModel],
) -> None:
    seen: dict[str, list[dict[str, LatencyStats]]] = {key: [] for key in models}
    profile = replace(QUICK, passes=3, max_cv=float("inf"), speed_probe=False)
    kept = measure_interleaved(
        models,
        profile,
        clocks=("wall", "thread_cpu"),
        on_pass=lambda key, stats, probe: seen[key].append(dict(stats)),
    )
    for key, passes in seen.items():
        assert len(passes) == 3
        for clock in ("wall", "thread_cpu"):
            fastest = min(passes, key=lambda p: p[clock].median_ms)[clock]
            # the whole kept figure is this model's own fastest pass, not another model's
            assert kept[key][clock] == replace(fastest, attempts=3)
            assert kept[key][clock].runs == QUICK.timed_runs
    narrow = {p["wall"] for p in seen["narrow"]}
    assert not narrow & {p["wall"] for p in seen["wide"]}, "each pass is reported for one model"


def test_the_speed_probe_is_timed_around_every_pass(models: dict[str, OnnxModel]) -> None:
    probes: list[dict[str, float]] = []
    profile = replace(QUICK, passes=2, max_cv=float("inf"), max_attempts=4, speed_probe=True)
    kept = measure_interleaved(
        models,
        profile,
        clocks=("wall", "thread_cpu"),
        on_pass=lambda key, stats, probe: probes.append(probe),
    )
    assert len(probes) == sum(stats["wall"].attempts for stats in kept.values())
    assert all(set(p) == {"wall", "thread_cpu"} and min(p.values()) > 0 for p in probes)
    assert all(2 <= stats["wall"].attempts <= 4 for stats in kept.values())


def test_noisy_models_get_extra_passes_up_to_max_attempts(models: dict[str, OnnxModel]) -> None:
    impossible = replace(QUICK, passes=1, max_cv=-1.0, max_attempts=3)
    kept = measure_interleaved(models, impossible)
    assert {stats["wall"].attempts for stats in kept.values()} == {3}


def test_single_model_measurement_is_one_model_interleaved(
    models: dict[str, OnnxModel],
) -> None:
    profile = replace(QUICK, passes=2, max_attempts=2)  # noisy or not: exactly two passes
    stats = measure_onnx_latency(models["wide"].onnx_bytes, (3, 16, 16), profile)
    assert stats.median_ms > 0 and (stats.runs, stats.attempts) == (QUICK.timed_runs, 2)


def test_thread_cpu_clock_needs_one_thread(models: dict[str, OnnxModel]) -> None:
    with pytest.raises(ValueError, match="threads=1"):
        measure_interleaved(models, replace(QUICK, threads=2), clocks=("thread_cpu",))
