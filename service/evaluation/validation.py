"""Validation: the real, expensive measurement of sub-networks.

Accuracy comes from the supernet's own evaluator (torch, held-out split), MACs and params are exact,
and latency is measured with onnxruntime on each host-profile device.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from service.evaluation.latency import OnnxModel, measure_interleaved
from service.evaluation.onnx_export import export_onnx
from service.evaluation.profile import DeviceProfile, LatencyStats
from service.supernets.protocol import Supernet
from service.supernets.space import Config


@dataclass(frozen=True)
class SubnetValidation:
    config: Config
    metrics: dict[str, float]
    latency: dict[str, LatencyStats]  # by device name


def exact_metrics(supernet: Supernet, config: Mapping[str, Any]) -> dict[str, float]:
    """Metrics computed, never predicted."""
    return {"macs": float(supernet.macs(config)), "params": float(supernet.params(config))}


def subnet_onnx(supernet: Supernet, config: Mapping[str, Any], batch_size: int) -> bytes:
    """The sub-network as ONNX with a fixed batch size, at its own input resolution."""
    return export_onnx(supernet.build_subnet(config), supernet.example_input(batch_size, config))


def input_shape(supernet: Supernet, config: Mapping[str, Any]) -> tuple[int, ...]:
    """One input of the sub-network without the batch axis (its resolution, where it has one)."""
    return tuple(supernet.example_input(1, config).shape[1:])


def validate_subnets_detailed(
    supernet: Supernet,
    configs: Sequence[Mapping[str, Any]],
    devices: Sequence[DeviceProfile] = (),
) -> list[SubnetValidation]:
    canonical = [supernet.canonical(c) for c in configs]
    accuracies = supernet.evaluate_accuracy(canonical)
    by_device: dict[str, dict[int, LatencyStats]] = {}
    by_batch_size: dict[int, dict[int, OnnxModel]] = {}
    for device in devices:  # the batch's networks interleaved, see measure_interleaved
        if device.batch_size not in by_batch_size:
            by_batch_size[device.batch_size] = {
                i: OnnxModel(
                    subnet_onnx(supernet, config, device.batch_size), input_shape(supernet, config)
                )
                for i, config in enumerate(canonical)
            }
        measured = measure_interleaved(by_batch_size[device.batch_size], device)
        by_device[device.name] = {i: stats["wall"] for i, stats in measured.items()}
    results = []
    for i, (config, accuracy) in enumerate(zip(canonical, accuracies, strict=True)):
        latency = {name: stats[i] for name, stats in by_device.items()}
        metrics = {"accuracy": accuracy, **exact_metrics(supernet, config)}
        metrics.update({f"latency@{name}": s.median_ms for name, s in latency.items()})
        results.append(SubnetValidation(config, metrics, latency))
    return results


def validate_subnets(
    supernet: Supernet,
    configs: Sequence[Mapping[str, Any]],
    devices: Sequence[DeviceProfile] = (),
) -> list[dict[str, float]]:
    """Measured metrics per config: accuracy, macs, params and `latency@<device>` (median ms)."""
    return [v.metrics for v in validate_subnets_detailed(supernet, configs, devices)]
