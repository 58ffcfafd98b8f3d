"""Latency measured for real with onnxruntime under a fixed device profile.

Following field practice (see docs/latency.md): explicit thread counts, full graph optimisation,
warm-up by count and by time, many timed runs, median and p90 rather than mean, and the coefficient
of variation kept with every figure; a measurement whose CV exceeds the profile's limit is repeated
and the steadiest attempt kept.
"""

from __future__ import annotations

import io
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn


@dataclass(frozen=True)
class DeviceProfile:
    """Everything that changes a latency figure on one device."""

    name: str = "host"
    threads: int = 1
    batch_size: int = 32
    warmup_runs: int = 10
    warmup_seconds: float = 0.3
    timed_runs: int = 50
    max_cv: float = 0.05
    max_attempts: int = 3
    runtime: str = field(default="onnxruntime", init=False)

    def descriptor(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "runtime_version": ort.__version__,
            "provider": "CPUExecutionProvider",
            "precision": "fp32",
            "graph_optimization": "ORT_ENABLE_ALL",
        }


@dataclass(frozen=True)
class LatencyStats:
    median_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    cv: float
    runs: int
    attempts: int = 1

    @classmethod
    def from_samples(cls, samples_ms: np.ndarray, attempts: int = 1) -> LatencyStats:
        mean = float(samples_ms.mean())
        std = float(samples_ms.std(ddof=1)) if len(samples_ms) > 1 else 0.0
        return cls(
            median_ms=float(np.median(samples_ms)),
            p90_ms=float(np.percentile(samples_ms, 90)),
            mean_ms=mean,
            std_ms=std,
            cv=std / mean if mean > 0 else float("inf"),
            runs=len(samples_ms),
            attempts=attempts,
        )

    def to_json(self) -> dict[str, float | int]:
        return asdict(self)


def export_onnx(module: nn.Module, example_input: torch.Tensor) -> bytes:
    """Export an eval-mode module to ONNX (opset 17) with a fixed input shape."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (example_input,),
            buffer,  # type: ignore[arg-type]  # file-like objects are accepted
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["output"],
        )
    return buffer.getvalue()


def inference_session(onnx_bytes: bytes, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def measure_onnx_latency(
    onnx_bytes: bytes, input_shape: tuple[int, ...], profile: DeviceProfile
) -> LatencyStats:
    """Time one batch of `profile.batch_size` inputs of `input_shape` (without the batch axis)."""
    session = inference_session(onnx_bytes, profile.threads)
    input_name = session.get_inputs()[0].name
    rng = np.random.default_rng(0)
    feed = {input_name: rng.standard_normal((profile.batch_size, *input_shape), np.float32)}
    started = time.perf_counter()
    runs = 0
    while runs < profile.warmup_runs or time.perf_counter() - started < profile.warmup_seconds:
        session.run(None, feed)
        runs += 1
    best: LatencyStats | None = None
    attempts = 0
    while attempts < profile.max_attempts:
        attempts += 1
        samples = np.empty(profile.timed_runs)
        for i in range(profile.timed_runs):
            tic = time.perf_counter()
            session.run(None, feed)
            samples[i] = (time.perf_counter() - tic) * 1000.0
        stats = LatencyStats.from_samples(samples)
        if best is None or stats.cv < best.cv:
            best = stats
        if stats.cv <= profile.max_cv:
            break
    assert best is not None
    return replace(best, attempts=attempts)


def measure_module_latency(
    module: nn.Module, profile: DeviceProfile, input_shape: tuple[int, ...]
) -> LatencyStats:
    example = torch.zeros(profile.batch_size, *input_shape)
    return measure_onnx_latency(export_onnx(module, example), input_shape, profile)
