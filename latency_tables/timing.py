"""Time onnxruntime runs on two clocks at once: wall clock and the calling thread's CPU time.

With one intra-op thread onnxruntime computes in the calling thread, so its CPU time is the
latency the op would have on an idle core: on a shared machine it is far steadier than the wall
clock, which also counts the time other processes hold the core.
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np

from service.evaluation.latency import DeviceProfile, LatencyStats, inference_session

Clock = Literal["wall", "thread_cpu"]
CLOCKS: tuple[Clock, ...] = ("wall", "thread_cpu")


def measure_onnx_clocks(
    onnx_bytes: bytes, input_shape: tuple[int, ...], profile: DeviceProfile
) -> dict[Clock, LatencyStats]:
    """Like `measure_onnx_latency` (same session, warm-up, runs, repeats) but timing both clocks;
    for each clock the attempt with the lowest CV is kept."""
    if profile.threads != 1:
        raise ValueError("thread CPU time equals latency only with threads=1")
    session = inference_session(onnx_bytes, profile.threads)
    rng = np.random.default_rng(0)
    feed = {
        session.get_inputs()[0].name: rng.standard_normal(
            (profile.batch_size, *input_shape), np.float32
        )
    }
    started = time.perf_counter()
    runs = 0
    while runs < profile.warmup_runs or time.perf_counter() - started < profile.warmup_seconds:
        session.run(None, feed)
        runs += 1
    best: dict[Clock, LatencyStats] = {}
    for attempt in range(1, profile.max_attempts + 1):
        wall_ms = np.empty(profile.timed_runs)
        cpu_ms = np.empty(profile.timed_runs)
        for i in range(profile.timed_runs):
            wall_tic, cpu_tic = time.perf_counter(), time.thread_time()
            session.run(None, feed)
            cpu_ms[i] = (time.thread_time() - cpu_tic) * 1000.0
            wall_ms[i] = (time.perf_counter() - wall_tic) * 1000.0
        samples_by_clock: dict[Clock, np.ndarray] = {"wall": wall_ms, "thread_cpu": cpu_ms}
        for clock, samples in samples_by_clock.items():
            stats = LatencyStats.from_samples(samples, attempts=attempt)
            if clock not in best or stats.cv < best[clock].cv:
                best[clock] = stats
        if all(stats.cv <= profile.max_cv for stats in best.values()):
            break
    return best
