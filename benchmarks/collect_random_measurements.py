"""Measure random sub-networks of the built-in supernet for real and store them for the benchmarks.

`python -m benchmarks.collect_random_measurements --n 400` writes
`benchmarks/data/mbv3_digits_random.json`: a list of {"config", "config_hash", "metrics"} with
accuracy (torch, held-out split), exact MACs/params and latency@host (onnxruntime, host profile).
Distinct networks only (canonical hash); `*.about.json` beside it records the checkpoint and the
device profile.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from service.evaluation.profile import DeviceProfile
from service.evaluation.validation import validate_subnets
from service.supernets.registry import builtin_supernet

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "data" / "mbv3_digits_random.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--batch", type=int, default=10, help="networks per validation batch")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()

    supernet = builtin_supernet()
    space = supernet.space
    device = DeviceProfile()
    rng = np.random.default_rng(args.seed)
    configs, seen = [], set()
    while len(configs) < args.n:
        (config,) = space.sample(rng, 1)
        digest = space.config_hash(config)
        if digest not in seen:
            seen.add(digest)
            configs.append(config)
    started = time.perf_counter()
    records = []
    for start in range(0, len(configs), args.batch):
        batch = configs[start : start + args.batch]
        # one validation batch, as a job runs it: latencies timed in interleaved passes
        for config, metrics in zip(batch, validate_subnets(supernet, batch, [device]), strict=True):
            records.append(
                {"config": config, "config_hash": space.config_hash(config), "metrics": metrics}
            )
        print(f"{len(records)}/{len(configs)} measured ({time.perf_counter() - started:.0f} s)")
    about = {
        "supernet": supernet.family,
        "checkpoint_sha256": getattr(supernet, "checkpoint_sha256", None),
        "device": device.descriptor(),
        "seed": args.seed,
        "batch": args.batch,
        "networks": len(records),
        "measured_seconds": round(time.perf_counter() - started, 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(records, indent=1) + "\n")
    args.output.with_suffix(".about.json").write_text(json.dumps(about, indent=2) + "\n")
    print(f"wrote {len(records)} networks to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
