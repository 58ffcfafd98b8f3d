"""Latency measured for real with onnxruntime under a fixed device profile.

Following field practice (see docs/latency.md): explicit thread counts, full graph optimisation,
warm-up by count and by time, many timed runs, median and p90 rather than mean, and the coefficient
of variation kept with every figure.

A shared CPU does not run at one speed: other tenants slow the same code down by 1.5× for seconds
at a time. So each model is timed in several passes (bursts of `timed_runs` runs), and models
measured together are interleaved in a shuffled order pass by pass, so their passes are spread over
time; the fastest pass (lowest median) is kept, as `timeit` keeps the best repeat, because the slow
ones measure the neighbours, not the model. A model whose kept pass is still noisier than the
profile's CV limit gets further passes, up to `max_attempts`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from service.evaluation.onnx_export import export_onnx
from service.evaluation.profile import DeviceProfile, LatencyStats


def inference_session(onnx_bytes: bytes, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


Clock = Literal["wall", "thread_cpu"]
CLOCKS: tuple[Clock, ...] = ("wall", "thread_cpu")
ModelKey = TypeVar("ModelKey", bound=Hashable)


@dataclass(frozen=True)
class OnnxModel:
    onnx_bytes: bytes
    input_shape: tuple[int, ...]  # without the batch axis


def _timed_pass(
    session: ort.InferenceSession, feed: dict[str, np.ndarray], runs: int
) -> dict[Clock, np.ndarray]:
    wall_ms, cpu_ms = np.empty(runs), np.empty(runs)
    for i in range(runs):
        wall_tic, cpu_tic = time.perf_counter(), time.thread_time()
        session.run(None, feed)
        cpu_ms[i] = (time.thread_time() - cpu_tic) * 1000.0
        wall_ms[i] = (time.perf_counter() - wall_tic) * 1000.0
    return {"wall": wall_ms, "thread_cpu": cpu_ms}


@dataclass
class _Pass:
    samples: dict[Clock, np.ndarray]
    probe_ms: dict[Clock, float]  # the speed probe's median around this pass (empty without)


_PROBE_BATCH = 4
_PROBE_RUNS = 3  # before and after each pass
_PROBE_SLOW = 1.25  # a pass is "slow" when the probe read this much above its fastest
_MIN_EXTRA_ROUND_S = 0.5


@functools.cache
def speed_probe_model() -> OnnxModel:
    """A small fixed network timed right before and after every pass to read the CPU's speed."""
    module = nn.Sequential(
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1, groups=32),
        nn.ReLU(),
        nn.Conv2d(32, 16, 1),
    )
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
    return OnnxModel(export_onnx(module, torch.zeros(_PROBE_BATCH, 16, 16, 16)), (16, 16, 16))


def _fastest(passes: list[_Pass], clock: Clock) -> _Pass:
    return min(passes, key=lambda p: float(np.median(p.samples[clock])))


def measure_interleaved(
    models: Mapping[ModelKey, OnnxModel],
    profile: DeviceProfile,
    *,
    clocks: tuple[Clock, ...] = ("wall",),
    seed: int = 0,
    on_pass: Callable[[ModelKey, dict[Clock, LatencyStats], dict[Clock, float]], None]
    | None = None,
) -> dict[ModelKey, dict[Clock, LatencyStats]]:
    """Time every model in `profile.passes` shuffled passes; per model and clock the fastest pass.

    A model gets further passes (up to `max_attempts`) while its fastest pass is noisier than
    `max_cv` or, with `profile.speed_probe`, was timed while the CPU ran slow: a small fixed
    network is timed around every pass, and a pass counts as slow when the probe read 25 % above
    the fastest it has read in this call. `on_pass(key, stats_by_clock, probe_ms_by_clock)` sees
    every pass as it is timed.

    `thread_cpu` is the calling thread's CPU time: with one intra-op thread onnxruntime computes
    in the caller, so it excludes time other processes held the core (threads=1 only).
    """
    if "thread_cpu" in clocks and profile.threads != 1:
        raise ValueError("thread CPU time equals latency only with threads=1")
    rng = np.random.default_rng(seed)

    def open_session(model: OnnxModel, batch: int) -> tuple[ort.InferenceSession, dict]:
        session = inference_session(model.onnx_bytes, profile.threads)
        shape = (batch, *model.input_shape)
        feed = {session.get_inputs()[0].name: rng.standard_normal(shape, np.float32)}
        started, runs = time.perf_counter(), 0
        while runs < profile.warmup_runs or time.perf_counter() - started < profile.warmup_seconds:
            session.run(None, feed)
            runs += 1
        return session, feed

    probe = open_session(speed_probe_model(), _PROBE_BATCH) if profile.speed_probe else None
    sessions = {key: open_session(model, profile.batch_size) for key, model in models.items()}
    timed: dict[ModelKey, list[_Pass]] = {key: [] for key in models}
    probe_floor: dict[Clock, float] = {}

    def summary(key: ModelKey) -> dict[Clock, LatencyStats]:
        return {
            clock: LatencyStats.from_samples(
                _fastest(timed[key], clock).samples[clock], attempts=len(timed[key])
            )
            for clock in clocks
        }

    def unsettled(kept: _Pass, clock: Clock) -> bool:
        if LatencyStats.from_samples(kept.samples[clock]).cv > profile.max_cv:
            return True
        return clock in kept.probe_ms and kept.probe_ms[clock] > _PROBE_SLOW * probe_floor[clock]

    def wants_pass(key: ModelKey) -> bool:
        done = len(timed[key])
        if done < profile.passes:
            return True
        if done >= max(profile.passes, profile.max_attempts):
            return False
        return any(unsettled(_fastest(timed[key], clock), clock) for clock in clocks)

    keys = list(models)
    round_started = time.perf_counter()
    while pending := [k for k in keys if wants_pass(k)]:
        if all(len(timed[k]) >= profile.passes for k in pending):
            # extra rounds for few models come fast: give a slow spell time to pass
            time.sleep(max(0.0, _MIN_EXTRA_ROUND_S - (time.perf_counter() - round_started)))
        round_started = time.perf_counter()
        for index in rng.permutation(len(pending)):
            key = pending[int(index)]
            session, feed = sessions[key]
            if timed[key]:  # re-warm caches evicted by the models timed in between
                for _ in range(min(profile.warmup_runs, 3)):
                    session.run(None, feed)
            before = _timed_pass(*probe, _PROBE_RUNS) if probe else {}
            samples = _timed_pass(session, feed, profile.timed_runs)
            after = _timed_pass(*probe, _PROBE_RUNS) if probe else {}
            probe_ms: dict[Clock, float] = {
                c: float(np.median(np.concatenate([before[c], after[c]]))) for c in before
            }
            for clock, value in probe_ms.items():
                probe_floor[clock] = min(probe_floor.get(clock, value), value)
            timed[key].append(_Pass(samples, probe_ms))
            if on_pass is not None:
                this_pass = {c: LatencyStats.from_samples(samples[c]) for c in clocks}
                on_pass(key, this_pass, probe_ms)
    return {key: summary(key) for key in keys}


def measure_onnx_latency(
    onnx_bytes: bytes, input_shape: tuple[int, ...], profile: DeviceProfile
) -> LatencyStats:
    """Time one batch of `profile.batch_size` inputs of `input_shape` (without the batch axis)."""
    return measure_interleaved({0: OnnxModel(onnx_bytes, input_shape)}, profile)[0]["wall"]
