"""Build a LUT by profiling every distinct op of a space with onnxruntime on this host."""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from latency_tables.schema import (
    DeviceDescriptor,
    LatencyEntry,
    LatencyTable,
    LatencyTableError,
    MeasurementInfo,
    now_utc,
)
from service.evaluation.latency import CLOCKS, Clock, OnnxModel, measure_interleaved
from service.evaluation.onnx_export import export_onnx
from service.evaluation.profile import DeviceProfile, LatencyStats

BUILD_METHOD = (
    "onnxruntime CPU, one ONNX session per op (the supernet's op_module), batch of the profile, "
    "warm-up by count and time; passes of timed runs over all ops in shuffled order, each op's "
    "fastest pass kept (more passes while it is noisy or was timed while a speed probe read the "
    "CPU as slow)"
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


def entry_from_stats(stats: LatencyStats) -> LatencyEntry:
    return LatencyEntry(
        mean_ms=stats.mean_ms,
        std_ms=stats.std_ms,
        count=stats.runs,
        median_ms=stats.median_ms,
        p90_ms=stats.p90_ms,
        cv=stats.cv,
    )


def op_models(supernet: Any, profile: DeviceProfile, keys: Sequence[str]) -> dict[str, OnnxModel]:
    """Each op key's module from `supernet.op_module(key)` as ONNX at the profile's batch size."""
    models = {}
    for key in keys:
        module, input_shape = supernet.op_module(key)
        example = torch.zeros(profile.batch_size, *input_shape)
        models[key] = OnnxModel(export_onnx(module, example), tuple(input_shape))
    return models


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


def measure_ops(
    supernet: Any,
    profile: DeviceProfile,
    keys: Sequence[str] | None = None,
    *,
    clocks: Sequence[Clock] = ("wall",),
    seed: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, dict[Clock, LatencyStats]]:
    """Each op's fastest pass per clock (ops interleaved in shuffled passes)."""
    keys = _check_supernet(supernet, keys)
    if not clocks or any(c not in CLOCKS for c in clocks):
        raise LatencyTableError(f"need clocks among {CLOCKS}; got {clocks}")
    models = op_models(supernet, profile, keys)
    total, done = profile.passes * len(keys), 0

    def report(key: str, *_: object) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, max(total, done), key)

    return measure_interleaved(models, profile, clocks=tuple(clocks), seed=seed, on_pass=report)


def tables_from_stats(
    supernet: Any,
    profile: DeviceProfile,
    stats: Mapping[str, Mapping[Clock, LatencyStats]],
    *,
    clocks: Sequence[Clock] = ("wall",),
    command: str | None = None,
) -> dict[Clock, LatencyTable]:
    measured_at = now_utc()
    return {
        clock: LatencyTable(
            device=profile.name if clock == "wall" else f"{profile.name}-{clock.replace('_', '-')}",
            descriptor=profile_descriptor(profile, clock),
            family=str(supernet.family),
            space=space_fingerprint(supernet),
            measurement=MeasurementInfo(
                method=BUILD_METHOD + f"; {profile.passes} pass(es); clock: {clock}",
                measured_at=measured_at,
                command=command,
            ),
            entries={key: entry_from_stats(by_clock[clock]) for key, by_clock in stats.items()},
        )
        for clock in clocks
    }


def build_luts(
    supernet: Any,
    profile: DeviceProfile,
    keys: Sequence[str] | None = None,
    *,
    clocks: Sequence[Clock] = ("wall",),
    seed: int = 0,
    command: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[Clock, LatencyTable]:
    """One LUT per clock from a single measurement of the ops (all the space runs by default),
    in `profile.passes` interleaved passes (see `service.evaluation.latency`)."""
    stats = measure_ops(supernet, profile, keys, clocks=clocks, seed=seed, progress=progress)
    return tables_from_stats(supernet, profile, stats, clocks=clocks, command=command)


def build_lut(
    supernet: Any,
    profile: DeviceProfile,
    keys: Sequence[str] | None = None,
    *,
    clock: Clock = "wall",
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
        seed=seed,
        command=command,
        progress=progress,
    )
    return tables[clock]
