"""How close LUT estimates come to measured whole-network latency on this host.

One command: measures the built-in supernet's ops (the LUT) and the calibration and evaluation
sub-networks in the same interleaved passes (`measure_interleaved`: shuffled order, each model's
fastest pass kept, so the table and the networks are timed under the same conditions), then
reports for the evaluation networks the share within ±10 % and the MAPE of the raw LUT sum and
of the calibrated estimate (fitted on the separate calibration networks), on the wall clock and
on the thread's CPU clock. Prints JSON, then a table.

    .venv/bin/python benchmarks/latency_estimation.py [--networks 200] [--calibration-networks 60]
        [--passes 5] [--save-measurements FILE] [--from-measurements FILE] [--write-data]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from latency_tables import CalibratedLatencyEstimator, LatencyTable, estimate_latency
from latency_tables.builder import cpu_model, op_models, tables_from_stats
from latency_tables.calibration import score_estimates
from latency_tables.shipped import calibration_path, lut_path
from service.evaluation.latency import CLOCKS, OnnxModel, measure_interleaved
from service.evaluation.onnx_export import export_onnx
from service.evaluation.profile import DeviceProfile
from service.supernets.builtin import MobileNetV3DigitsSupernet
from service.supernets.elastic_mbv3 import ElasticMobileNetV3


def network_model(supernet: MobileNetV3DigitsSupernet, config: Any, batch: int) -> OnnxModel:
    """The sub-network as ONNX; weights are random (latency does not depend on them)."""
    module = supernet.build_subnet(config, recalibrate=False)
    onnx_bytes = export_onnx(module, supernet.example_input(batch))
    return OnnxModel(onnx_bytes, tuple(supernet.example_input(1).shape[1:]))


def sample_configs(
    supernet: MobileNetV3DigitsSupernet, n: int, seed: int, seen: set[str]
) -> list[Any]:
    """`n` random canonical configs not in `seen` (which is updated)."""
    rng = np.random.default_rng(seed)
    configs: list[Any] = []
    while len(configs) < n:
        for config in supernet.space.sample(rng, n):
            digest = supernet.space.config_hash(config)
            if digest not in seen and len(configs) < n:
                seen.add(digest)
                configs.append(supernet.canonical(config))
    return configs


def run_measurements(args: argparse.Namespace) -> dict[str, Any]:
    """Ops and networks measured together, in `--passes` interleaved passes."""
    supernet = MobileNetV3DigitsSupernet(ElasticMobileNetV3())
    profile = DeviceProfile(
        name="host",
        threads=args.threads,
        batch_size=args.batch_size,
        timed_runs=args.timed_runs,
        passes=args.passes,
        warmup_seconds=0.1,
    )
    seen: set[str] = set()
    networks = [
        ("calibration", c) for c in sample_configs(supernet, args.calibration_networks, 0, seen)
    ]
    networks += [("evaluation", c) for c in sample_configs(supernet, args.networks, 1, seen)]
    started = time.time()
    ops = op_models(supernet, profile, supernet.all_layer_keys())
    models: dict[str, OnnxModel] = {f"op:{key}": model for key, model in ops.items()}
    for i, (_, config) in enumerate(networks):
        models[f"net:{i}"] = network_model(supernet, config, profile.batch_size)
    reference = supernet.canonical(supernet.space.largest())
    models["reference"] = network_model(supernet, reference, profile.batch_size)
    passes: dict[str, list[dict[str, Any]]] = {key: [] for key in models}

    def progress(key: str, stats: dict[str, Any], probe_ms: dict[str, float]) -> None:
        passes[key].append({"median_ms": {c: s.median_ms for c, s in stats.items()}, **probe_ms})
        done = sum(map(len, passes.values()))
        if done % 500 == 0:
            print(f"[{time.time() - started:6.0f} s] {done} passes timed", file=sys.stderr)

    stats = measure_interleaved(models, profile, clocks=CLOCKS, seed=args.seed, on_pass=progress)
    op_stats = {key: stats[f"op:{key}"] for key in ops}
    luts = tables_from_stats(
        supernet, profile, op_stats, clocks=CLOCKS, command="python " + " ".join(sys.argv)
    )
    for clock, lut in luts.items():
        info = lut.measurement.model_copy(
            update={
                "notes": f"built by benchmarks/latency_estimation.py on {cpu_model()}, "
                f"interleaved with {len(networks)} whole networks; random weights",
                "reference_network": {
                    "config": reference,
                    "median_ms": stats["reference"][clock].median_ms,
                    "note": "largest sub-network, measured in the same passes as the ops: "
                    "measure it now to compare this host's speed with the table's",
                },
            }
        )
        luts[clock] = lut.model_copy(update={"measurement": info})
    return {
        "profile": profile.descriptor(),
        "luts": {clock: json.loads(lut.model_dump_json()) for clock, lut in luts.items()},
        "op_passes": {key: passes[f"op:{key}"] for key in ops},
        "networks": [
            {
                "split": split,
                "config": config,
                "layer_keys": supernet.layer_keys(config),
                "measured_ms": {c: s.median_ms for c, s in stats[f"net:{i}"].items()},
                "stats": {c: asdict(s) for c, s in stats[f"net:{i}"].items()},
                "passes": passes[f"net:{i}"],
            }
            for i, (split, config) in enumerate(networks)
        ],
        "seconds": round(time.time() - started, 1),
    }


def analyse_clock(measurements: dict[str, Any], clock: str) -> dict[str, Any]:
    lut = LatencyTable.model_validate(measurements["luts"][clock])
    networks = measurements["networks"]
    split = np.array([n["split"] for n in networks])
    keys = [n["layer_keys"] for n in networks]
    train, test = np.flatnonzero(split == "calibration"), np.flatnonzero(split == "evaluation")
    raw = np.array([estimate_latency(lut, keys[i]) for i in test])
    measured = np.array([n["measured_ms"][clock] for n in networks])
    estimator = CalibratedLatencyEstimator(lut).fit([keys[i] for i in train], measured[train])
    calibrated = estimator.predict([keys[i] for i in test])
    return {
        "lut": lut,
        "estimator": estimator,
        "raw_lut_sum": score_estimates(raw, measured[test]).__dict__,
        "calibrated": score_estimates(calibrated, measured[test]).__dict__,
        "calibration_model": estimator.model_,
        "calibration_cv": {k: v.__dict__ for k, v in estimator.cv_scores_.items()},
        "raw_sum_over_measured_median": float(np.median(raw / measured[test])),
        "spearman_raw_sum": float(spearmanr(raw, measured[test]).statistic),
        "spearman_calibrated": float(spearmanr(calibrated, measured[test]).statistic),
        "n_calibration": len(train),
        "n_evaluation": len(test),
        "measured_ms_range": [float(measured.min()), float(measured.max())],
        "median_cv_kept_pass": float(
            np.median([n["stats"][clock]["cv"] for n in networks if "stats" in n])
        ),
    }


def print_table(results: dict[str, Any]) -> None:
    print(f"\n{'clock':<11} {'estimate':<12} {'within ±10 %':>13} {'MAPE %':>8} {'Spearman':>9}")
    for clock in CLOCKS:
        for name, rho in (
            ("raw_lut_sum", "spearman_raw_sum"),
            ("calibrated", "spearman_calibrated"),
        ):
            score = results[clock][name]
            print(
                f"{clock:<11} {name:<12} {100 * score['within_10pct']:>12.1f}% "
                f"{score['mape']:>8.2f} {results[clock][rho]:>9.3f}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=200, help="evaluation sub-networks")
    parser.add_argument("--calibration-networks", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--passes", type=int, default=5, help="interleaved timed passes")
    parser.add_argument("--timed-runs", type=int, default=20, help="timed runs per pass")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-measurements", type=Path, default=None)
    parser.add_argument("--from-measurements", type=Path, default=None, help="re-analyse only")
    parser.add_argument("--write-data", action="store_true", help="ship LUT + calibration")
    args = parser.parse_args()
    if args.from_measurements:
        measurements = json.loads(args.from_measurements.read_text())
    else:
        measurements = run_measurements(args)
        if args.save_measurements:
            args.save_measurements.parent.mkdir(parents=True, exist_ok=True)
            args.save_measurements.write_text(json.dumps(measurements))
    results: dict[str, Any] = {"seconds": measurements["seconds"], "host": platform.node()}
    for clock in CLOCKS:
        results[clock] = analyse_clock(measurements, clock)
        lut: LatencyTable = results[clock].pop("lut")
        estimator = results[clock].pop("estimator")
        if args.write_data:
            lut_path(lut.family, lut.device).write_text(lut.to_json())
            calibration = estimator.to_json()
            calibration["fitted_by"] = "benchmarks/latency_estimation.py, calibration networks"
            path = calibration_path(lut.family, lut.device)
            path.write_text(json.dumps(calibration, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
