"""`hwnas supernet report`: what a supernet's space holds and what its sub-networks measure."""

from __future__ import annotations

from typing import Any

import numpy as np

from service.evaluation.latency import DeviceProfile
from service.evaluation.validation import validate_subnets_detailed
from service.supernets.registry import load_supernet


def build_report(
    family: str,
    checkpoint: str | None = None,
    n_random: int = 20,
    seed: int = 0,
    device: DeviceProfile | None = None,
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
        "subnets": rows,
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
    return "\n".join(lines)
