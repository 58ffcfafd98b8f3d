"""How close LUT estimates come to measured whole-network latency on this host.

One command: builds the built-in supernet's LUT in this run, measures calibration and evaluation
sub-networks interleaved in random order with a fixed reference network re-measured throughout
(drift correction, see docs/latency.md), then reports for the evaluation networks the share
within ±10 % and the MAPE of the raw LUT sum and of the calibrated estimate (fitted on the
separate calibration networks). Prints JSON, then a table.

    .venv/bin/python benchmarks/latency_estimation.py [--networks 200] [--calibration-networks 60]
        [--save-measurements FILE] [--from-measurements FILE] [--write-data]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from latency_tables import CalibratedLatencyEstimator, LatencyTable, estimate_latency
from latency_tables.builder import build_luts, cpu_model
from latency_tables.calibration import score_estimates
from latency_tables.shipped import calibration_path, lut_path
from latency_tables.timing import CLOCKS, measure_onnx_clocks
from service.evaluation.latency import DeviceProfile, export_onnx
from service.supernets.builtin import MobileNetV3DigitsSupernet
from service.supernets.elastic_mbv3 import ElasticMobileNetV3


def measure_network_ms(
    supernet: MobileNetV3DigitsSupernet, config: Any, profile: DeviceProfile
) -> dict[str, float]:
    """Median whole-network latency on each clock; weights are random (latency ignores them)."""
    module = supernet.build_subnet(config, recalibrate=False)
    onnx_bytes = export_onnx(module, supernet.example_input(profile.batch_size))
    input_shape = tuple(supernet.example_input(1).shape[1:])
    stats = measure_onnx_clocks(onnx_bytes, input_shape, profile)
    return {clock: s.median_ms for clock, s in stats.items()}


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
    """Measure everything in one run: reference, LUT, then interleaved networks + references."""
    supernet = MobileNetV3DigitsSupernet(ElasticMobileNetV3())
    profile = DeviceProfile(name="host", threads=args.threads, batch_size=args.batch_size)
    seen: set[str] = set()
    calibration = sample_configs(supernet, args.calibration_networks, args.seed, seen)
    evaluation = sample_configs(supernet, args.networks, args.seed + 1, seen)
    reference = supernet.canonical(supernet.space.largest())
    started = time.time()

    def log(text: str) -> None:
        print(f"[{time.time() - started:6.0f} s] {text}", file=sys.stderr)

    references: list[dict[str, Any]] = []

    def measure_reference(position: int) -> None:
        latency = measure_network_ms(supernet, reference, profile)
        references.append({"position": position, "median_ms": latency})
        log(f"reference {latency}")

    measure_reference(0)
    luts = build_luts(
        supernet,
        profile,
        clocks=CLOCKS,
        passes=args.passes,
        seed=args.seed,
        command="python " + " ".join(sys.argv),
    )
    measure_reference(0)
    lut_reference_ms = {
        clock: float(np.mean([r["median_ms"][clock] for r in references])) for clock in CLOCKS
    }
    for clock, lut in luts.items():
        info = lut.measurement.model_copy(
            update={
                "reference_network": {
                    "config": reference,
                    "median_ms": lut_reference_ms[clock],
                    "note": "largest sub-network, measured before and after the op sweep",
                },
                "notes": "built by benchmarks/latency_estimation.py on a shared 2-core host "
                f"({cpu_model()}) with other jobs running; random weights",
            }
        )
        luts[clock] = lut.model_copy(update={"measurement": info})
    log(f"LUTs of {len(luts['wall'].entries)} ops built")
    jobs = [("calibration", i, c) for i, c in enumerate(calibration)]
    jobs += [("evaluation", i, c) for i, c in enumerate(evaluation)]
    order = np.random.default_rng(args.seed + 2).permutation(len(jobs))
    networks: list[dict[str, Any]] = []
    for position, index in enumerate(order, start=1):
        split, _, config = jobs[int(index)]
        measured_ms = measure_network_ms(supernet, config, profile)
        networks.append(
            {
                "split": split,
                "position": position,
                "config": config,
                "measured_ms": measured_ms,
                "layer_keys": supernet.layer_keys(config),
            }
        )
        if position % args.reference_every == 0 or position == len(jobs):
            measure_reference(position)
        if position % 10 == 0:
            log(f"{position}/{len(jobs)} networks")
    return {
        "profile": profile.descriptor(),
        "luts": {clock: json.loads(lut.model_dump_json()) for clock, lut in luts.items()},
        "lut_reference_ms": lut_reference_ms,
        "references": references,
        "networks": networks,
        "seconds": round(time.time() - started, 1),
    }


def drift_factors(measurements: dict[str, Any], clock: str) -> np.ndarray:
    """Per network: reference latency at that time ÷ at LUT build (interpolated, 3-point median)."""
    refs = measurements["references"][2:]  # the two around the LUT build define the baseline
    positions = np.array([r["position"] for r in refs], dtype=float)
    values = np.array([r["median_ms"][clock] for r in refs])
    smoothed = np.array([np.median(values[max(0, i - 1) : i + 2]) for i in range(len(values))])
    at = np.array([n["position"] for n in measurements["networks"]], dtype=float)
    return np.interp(at, positions, smoothed) / measurements["lut_reference_ms"][clock]


def analyse_clock(measurements: dict[str, Any], clock: str) -> dict[str, Any]:
    lut = LatencyTable.model_validate(measurements["luts"][clock])
    networks = measurements["networks"]
    drift = drift_factors(measurements, clock)
    split = np.array([n["split"] for n in networks])
    keys = [n["layer_keys"] for n in networks]
    train, test = np.flatnonzero(split == "calibration"), np.flatnonzero(split == "evaluation")
    raw = np.array([estimate_latency(lut, keys[i]) for i in test])
    results: dict[str, Any] = {"lut": lut}
    for correction, factor in (("drift_corrected", drift), ("uncorrected", np.ones(len(drift)))):
        measured = np.array([n["measured_ms"][clock] for n in networks]) / factor
        estimator = CalibratedLatencyEstimator(lut).fit([keys[i] for i in train], measured[train])
        calibrated = estimator.predict([keys[i] for i in test])
        results[correction] = {
            "raw_lut_sum": score_estimates(raw, measured[test]).__dict__,
            "calibrated": score_estimates(calibrated, measured[test]).__dict__,
            "calibration_model": estimator.model_,
            "calibration_cv": {k: v.__dict__ for k, v in estimator.cv_scores_.items()},
            "raw_sum_over_measured_median": float(np.median(raw / measured[test])),
            "spearman_raw_sum": float(spearmanr(raw, measured[test]).statistic),
            "n_calibration": len(train),
            "estimator": estimator,
        }
    refs = [r["median_ms"][clock] for r in measurements["references"]]
    results["reference_ms"] = {
        "lut_build": measurements["lut_reference_ms"][clock],
        "min": min(refs),
        "max": max(refs),
        "count": len(refs),
    }
    return results


def print_table(results: dict[str, Any]) -> None:
    print(f"\n{'clock':<11} {'estimate':<12} {'correction':<16} {'within ±10 %':>13} {'MAPE %':>8}")
    for clock in CLOCKS:
        for correction in ("drift_corrected", "uncorrected"):
            for name in ("raw_lut_sum", "calibrated"):
                score = results[clock][correction][name]
                print(
                    f"{clock:<11} {name:<12} {correction:<16} "
                    f"{100 * score['within_10pct']:>12.1f}% {score['mape']:>8.2f}"
                )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=200, help="evaluation sub-networks")
    parser.add_argument("--calibration-networks", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--passes", type=int, default=1, help="LUT sweeps over all ops")
    parser.add_argument("--reference-every", type=int, default=20)
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
        estimator = results[clock]["drift_corrected"]["estimator"]
        for correction in ("drift_corrected", "uncorrected"):
            results[clock][correction].pop("estimator")
        if args.write_data:
            lut_path(lut.family, lut.device).write_text(lut.to_json())
            calibration = estimator.to_json()
            calibration["fitted_by"] = "benchmarks/latency_estimation.py, drift-corrected networks"
            path = calibration_path(lut.family, lut.device)
            path.write_text(json.dumps(calibration, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
