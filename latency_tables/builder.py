"""Build a LUT by profiling every distinct op of a space with onnxruntime on this host."""

from __future__ import annotations

import hashlib
import json
import math
import platform
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latency_tables.schema import (
    DeviceDescriptor,
    LatencyEntry,
    LatencyTable,
    LatencyTableError,
    MeasurementInfo,
    now_utc,
)
from latency_tables.timing import CLOCKS, Clock, measure_onnx_clocks
from service.evaluation.latency import (
    DeviceProfile,
    LatencyStats,
    export_onnx,
    measure_module_latency,
)

BUILD_METHOD = (
    "onnxruntime CPU, one ONNX session per op (the supernet's op_module), batch of the profile, "
    "warm-up by count and time, timed runs repeated while CV exceeds the profile's limit; "
    "passes over all ops in shuffled order, per-op median of the pass medians"
)


def space_fingerprint(supernet: Any) -> str | None:
    """A short hash of the search space the op keys come from (None when it has no JSON form)."""
    to_json = getattr(getattr(supernet, "space", None), "to_json", None)
    if to_json is None:
        return None
    text = json.dumps(to_json(), sort_keys=True)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo where there is one, else the machine type."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def profile_descriptor(profile: DeviceProfile, clock: Clock = "wall") -> DeviceDescriptor:
    details = profile.descriptor()
    details.pop("name", None)
    details["clock"] = clock
    details.setdefault("hardware", cpu_model())
    return DeviceDescriptor.model_validate(details)


def combine_passes(passes: Sequence[LatencyStats]) -> LatencyEntry:
    """One entry from repeated measurements of an op: medians of medians, pooled spread."""
    means = [p.mean_ms for p in passes]
    mean_ms = statistics.fmean(means)
    within = statistics.fmean(p.std_ms**2 for p in passes)
    between = statistics.pvariance(means) if len(means) > 1 else 0.0
    std_ms = math.sqrt(within + between)
    return LatencyEntry(
        mean_ms=mean_ms,
        std_ms=std_ms,
        count=sum(p.runs for p in passes),
        median_ms=statistics.median(p.median_ms for p in passes),
        p90_ms=statistics.median(p.p90_ms for p in passes),
        cv=std_ms / mean_ms if mean_ms > 0 else 0.0,
    )


def _op_onnx(supernet: Any, key: str, profile: DeviceProfile) -> tuple[bytes, tuple[int, ...]]:
    module, input_shape = supernet.op_module(key)
    example = torch.zeros(profile.batch_size, *input_shape)
    return export_onnx(module, example), tuple(input_shape)


def _check_supernet(supernet: Any, keys: Sequence[str] | None) -> list[str]:
    if not hasattr(supernet, "op_module"):
        raise LatencyTableError(
            f"supernet family {getattr(supernet, 'family', '?')!r} has no op_module(key); "
            "it cannot be profiled per op"
        )
    if keys is None:
        if not hasattr(supernet, "all_layer_keys"):
            raise LatencyTableError("the supernet has no all_layer_keys(); pass keys= explicitly")
        keys = supernet.all_layer_keys()
    unique = list(dict.fromkeys(keys))
    if not unique:
        raise LatencyTableError("need at least one op key to profile")
    return unique


def build_luts(
    supernet: Any,
    profile: DeviceProfile,
    keys: Sequence[str] | None = None,
    *,
    clocks: Sequence[Clock] = ("wall",),
    passes: int = 1,
    seed: int = 0,
    command: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[Clock, LatencyTable]:
    """One LUT per clock from a single sweep over the ops (all the space runs by default).

    `wall` alone uses the service's own `measure_module_latency`; `thread_cpu` (threads=1 only)
    times both clocks in the same runs (see `latency_tables.timing`).
    """
    keys = _check_supernet(supernet, keys)
    if passes < 1 or not clocks or any(c not in CLOCKS for c in clocks):
        raise LatencyTableError(f"need passes >= 1 and clocks among {CLOCKS}; got {clocks}")
    rng = np.random.default_rng(seed)
    measured: dict[Clock, dict[str, list[LatencyStats]]] = {
        c: {k: [] for k in keys} for c in clocks
    }
    total, done = passes * len(keys), 0
    for _ in range(passes):
        for index in rng.permutation(len(keys)):
            key = keys[int(index)]
            if list(clocks) == ["wall"]:
                module, input_shape = supernet.op_module(key)
                stats: dict[Clock, LatencyStats] = {
                    "wall": measure_module_latency(module, profile, tuple(input_shape))
                }
            else:
                stats = measure_onnx_clocks(*_op_onnx(supernet, key, profile), profile)
            for clock in clocks:
                measured[clock][key].append(stats[clock])
            done += 1
            if progress is not None:
                progress(done, total, key)
    measured_at = now_utc()
    return {
        clock: LatencyTable(
            device=profile.name if clock == "wall" else f"{profile.name}-{clock.replace('_', '-')}",
            descriptor=profile_descriptor(profile, clock),
            family=str(supernet.family),
            space=space_fingerprint(supernet),
            measurement=MeasurementInfo(
                method=BUILD_METHOD + f"; {passes} pass(es); clock: {clock}",
                measured_at=measured_at,
                command=command,
            ),
            entries={key: combine_passes(measured[clock][key]) for key in keys},
        )
        for clock in clocks
    }


def build_lut(
    supernet: Any,
    profile: DeviceProfile,
    keys: Sequence[str] | None = None,
    *,
    clock: Clock = "wall",
    passes: int = 1,
    seed: int = 0,
    command: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> LatencyTable:
    """Measure each op key (all the space runs by default) and return the device's LUT."""
    tables = build_luts(
        supernet,
        profile,
        keys,
        clocks=(clock,),
        passes=passes,
        seed=seed,
        command=command,
        progress=progress,
    )
    return tables[clock]
