"""What a latency figure depends on (the device profile) and the statistics kept with it.

Plain records: no torch, so the API, the catalog and the device agent use them without it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Annotated, Any

import numpy as np
import onnxruntime as ort
from pydantic import Field

# The constraints of each field, as data: `catalog.devices` validates descriptors against them
# (pydantic reads the annotations); constructing a DeviceProfile in code checks nothing.
PositiveInt = Annotated[int, Field(strict=True, gt=0, le=1_000_000)]
PositiveSeconds = Annotated[float, Field(strict=True, gt=0, le=3600, allow_inf_nan=False)]
PositiveRatio = Annotated[float, Field(strict=True, gt=0, le=1000, allow_inf_nan=False)]
Switch = Annotated[bool, Field(strict=True)]


@dataclass(frozen=True)
class DeviceProfile:
    """Everything that changes a latency figure on one device."""

    name: str = "host"
    threads: PositiveInt = 1
    batch_size: PositiveInt = 32
    warmup_runs: PositiveInt = 10
    warmup_seconds: PositiveSeconds = 0.1
    timed_runs: PositiveInt = 20  # per pass
    max_cv: PositiveRatio = 0.05
    max_attempts: PositiveInt = 20  # passes at most, while the fastest is noisy or was timed slow
    passes: PositiveInt = 5
    speed_probe: Switch = True
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
