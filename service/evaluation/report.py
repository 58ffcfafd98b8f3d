"""`hwnas supernet report`: what a supernet's space holds and what its sub-networks measure."""

from __future__ import annotations

from typing import Any

import numpy as np

from service.evaluation.latency import measure_onnx_latency
from service.evaluation.profile import DeviceProfile
from service.evaluation.validation import input_shape, subnet_onnx, validate_subnets_detailed
from service.supernets.protocol import Supernet
from service.supernets.registry import load_supernet
from service.supernets.space import Config


def build_report(
    family: str,
    checkpoint: str | None = None,
    n_random: int = 20,
    seed: int = 0,
    device: DeviceProfile | None = None,
    repeats: int = 5,
) -> dict[str, Any]:
    supernet = load_supernet(family, checkpoint)
    device = device or DeviceProfile()
    space = supernet.space
    configs = [("smallest", space.smallest()), ("largest", space.largest())]
    seen = {space.config_hash(c) for _, c in configs}
    rng = np.random.default_rng(seed)
    while len(configs) < n_random + 2:
        (config,) = space.sample(rng, 1)
        if space.config_hash(config) not in seen:
            seen.add(space.config_hash(config))
            configs.append((f"random-{len(configs) - 1}", config))
    validations = validate_subnets_detailed(supernet, [c for _, c in configs], [device])
    rows: list[dict[str, Any]] = []
    for (label, config), v in zip(configs, validations, strict=True):
        stats = v.latency[device.name]
        rows.append(
            {
                "label": label,
                "config_hash": space.config_hash(config),
                "accuracy": v.metrics["accuracy"],
                "macs": int(v.metrics["macs"]),
                "params": int(v.metrics["params"]),
                "latency_median_ms": stats.median_ms,
                "latency_p90_ms": stats.p90_ms,
                "latency_cv": stats.cv,
                "config": config,
            }
        )
    stability = {
        label: repeated_latency(supernet, config, device, repeats) for label, config in configs[:2]
    }
    latencies = [r["latency_median_ms"] for r in rows]
    accuracies = [r["accuracy"] for r in rows]
    return {
        "family": supernet.family,
        "dataset": supernet.dataset,
        "search_space_log10_size": round(space.log10_size(), 3),
        "genes": len(space.genes),
        "device": device.descriptor(),
        "accuracy_range": [min(accuracies), max(accuracies)],
        "latency_ratio_largest_to_smallest": rows[1]["latency_median_ms"]
        / rows[0]["latency_median_ms"],
        "latency_range_ms": [min(latencies), max(latencies)],
        "repeated_measurements": stability,
        "subnets": rows,
    }


def repeated_latency(
    supernet: Supernet, config: Config, device: DeviceProfile, repeats: int
) -> dict[str, Any]:
    """Measure one network `repeats` times, each in a fresh session: how stable is the median?"""
    onnx_bytes = subnet_onnx(supernet, config, device.batch_size)
    shape = input_shape(supernet, config)
    medians = np.array(
        [measure_onnx_latency(onnx_bytes, shape, device).median_ms for _ in range(repeats)]
    )
    return {
        "medians_ms": medians.round(4).tolist(),
        "cv_of_medians": float(medians.std(ddof=1) / medians.mean()),
    }


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"{report['family']} on {report['dataset']}: 10^{report['search_space_log10_size']} "
        f"sub-networks, {report['genes']} genes",
        f"latency: onnxruntime, {report['device']['threads']} thread(s), "
        f"batch {report['device']['batch_size']}",
        f"{'sub-network':<12} {'accuracy %':>10} {'MACs':>11} {'params':>9} "
        f"{'latency ms':>10} {'CV %':>6}",
    ]
    for row in report["subnets"]:
        lines.append(
            f"{row['label']:<12} {row['accuracy']:>10.2f} {row['macs']:>11,} {row['params']:>9,} "
            f"{row['latency_median_ms']:>10.3f} {100 * row['latency_cv']:>6.1f}"
        )
    lines.append(
        f"largest/smallest latency ratio: {report['latency_ratio_largest_to_smallest']:.2f}"
    )
    for label, repeated in report["repeated_measurements"].items():
        lines.append(
            f"{label}: {len(repeated['medians_ms'])} repeated measurements, CV of the medians "
            f"{100 * repeated['cv_of_medians']:.1f} %"
        )
    return "\n".join(lines)
