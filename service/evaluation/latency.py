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
from typing import Generic, Literal, TypeVar

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort

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
    """A small fixed network timed right before and after every pass to read the CPU's speed:
    conv 3×3 16→32, ReLU, depthwise 3×3, ReLU, conv 1×1 32→16, built as an ONNX graph directly
    (no torch, so the device agent runs without it)."""
    rng = np.random.default_rng(0)

    def weights(name: str, *shape: int) -> onnx.TensorProto:
        values = (0.1 * rng.standard_normal(shape)).astype(np.float32)
        return onnx.numpy_helper.from_array(values, name)

    conv = functools.partial(onnx.helper.make_node, "Conv", pads=[1, 1, 1, 1])
    nodes = [
        conv(["input", "w1", "b1"], ["c1"], kernel_shape=[3, 3]),
        onnx.helper.make_node("Relu", ["c1"], ["r1"]),
        conv(["r1", "w2", "b2"], ["c2"], kernel_shape=[3, 3], group=32),
        onnx.helper.make_node("Relu", ["c2"], ["r2"]),
        onnx.helper.make_node("Conv", ["r2", "w3", "b3"], ["output"], kernel_shape=[1, 1]),
    ]
    shape = [_PROBE_BATCH, 16, 16, 16]
    graph = onnx.helper.make_graph(
        nodes,
        "speed_probe",
        [onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, shape)],
        [onnx.helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, shape)],
        initializer=[
            weights("w1", 32, 16, 3, 3),
            weights("b1", 32),
            weights("w2", 32, 1, 3, 3),
            weights("b2", 32),
            weights("w3", 16, 32, 1, 1),
            weights("b3", 16),
        ],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    return OnnxModel(model.SerializeToString(), (16, 16, 16))


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
    timing = _InterleavedTiming(models, profile, clocks, np.random.default_rng(seed))
    round_started = time.perf_counter()
    while pending := [k for k in timing.keys if timing.wants_pass(k)]:
        if all(len(timing.timed[k]) >= profile.passes for k in pending):
            # extra rounds for few models come fast: give a slow spell time to pass
            time.sleep(max(0.0, _MIN_EXTRA_ROUND_S - (time.perf_counter() - round_started)))
        round_started = time.perf_counter()
        for index in timing.rng.permutation(len(pending)):
            key = pending[int(index)]
            samples, probe_ms = timing.time_pass(key)
            if on_pass is not None:
                this_pass = {c: LatencyStats.from_samples(samples[c]) for c in clocks}
                on_pass(key, this_pass, probe_ms)
    return {key: timing.summary(key) for key in timing.keys}


class _InterleavedTiming(Generic[ModelKey]):
    """The open sessions, the passes timed so far and the probe's fastest reading, per call."""

    def __init__(
        self,
        models: Mapping[ModelKey, OnnxModel],
        profile: DeviceProfile,
        clocks: tuple[Clock, ...],
        rng: np.random.Generator,
    ) -> None:
        self.profile, self.clocks, self.rng = profile, clocks, rng
        self.keys = list(models)
        self.probe = self._open(speed_probe_model(), _PROBE_BATCH) if profile.speed_probe else None
        self.sessions = {
            key: self._open(model, profile.batch_size) for key, model in models.items()
        }
        self.timed: dict[ModelKey, list[_Pass]] = {key: [] for key in models}
        self.probe_floor: dict[Clock, float] = {}

    def _open(self, model: OnnxModel, batch: int) -> tuple[ort.InferenceSession, dict]:
        session = inference_session(model.onnx_bytes, self.profile.threads)
        shape = (batch, *model.input_shape)
        feed = {session.get_inputs()[0].name: self.rng.standard_normal(shape, np.float32)}
        started, runs = time.perf_counter(), 0
        while (
            runs < self.profile.warmup_runs
            or time.perf_counter() - started < self.profile.warmup_seconds
        ):
            session.run(None, feed)
            runs += 1
        return session, feed

    def time_pass(self, key: ModelKey) -> tuple[dict[Clock, np.ndarray], dict[Clock, float]]:
        session, feed = self.sessions[key]
        if self.timed[key]:  # re-warm caches evicted by the models timed in between
            for _ in range(min(self.profile.warmup_runs, 3)):
                session.run(None, feed)
        before = _timed_pass(*self.probe, _PROBE_RUNS) if self.probe else {}
        samples = _timed_pass(session, feed, self.profile.timed_runs)
        after = _timed_pass(*self.probe, _PROBE_RUNS) if self.probe else {}
        probe_ms: dict[Clock, float] = {
            c: float(np.median(np.concatenate([before[c], after[c]]))) for c in before
        }
        for clock, value in probe_ms.items():
            self.probe_floor[clock] = min(self.probe_floor.get(clock, value), value)
        self.timed[key].append(_Pass(samples, probe_ms))
        return samples, probe_ms

    def summary(self, key: ModelKey) -> dict[Clock, LatencyStats]:
        return {
            clock: LatencyStats.from_samples(
                _fastest(self.timed[key], clock).samples[clock], attempts=len(self.timed[key])
            )
            for clock in self.clocks
        }

    def _unsettled(self, kept: _Pass, clock: Clock) -> bool:
        if LatencyStats.from_samples(kept.samples[clock]).cv > self.profile.max_cv:
            return True
        slow = _PROBE_SLOW * self.probe_floor.get(clock, float("inf"))
        return clock in kept.probe_ms and kept.probe_ms[clock] > slow

    def wants_pass(self, key: ModelKey) -> bool:
        done = len(self.timed[key])
        if done < self.profile.passes:
            return True
        if done >= max(self.profile.passes, self.profile.max_attempts):
            return False
        return any(self._unsettled(_fastest(self.timed[key], c), c) for c in self.clocks)


def measure_onnx_latency(
    onnx_bytes: bytes, input_shape: tuple[int, ...], profile: DeviceProfile
) -> LatencyStats:
    """Time one batch of `profile.batch_size` inputs of `input_shape` (without the batch axis)."""
    return measure_interleaved({0: OnnxModel(onnx_bytes, input_shape)}, profile)[0]["wall"]
