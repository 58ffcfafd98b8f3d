"""How steady this host's CPU is: the largest built-in sub-network timed in short blocks.

Times blocks of 10 onnxruntime runs (threads=1, batch 32) for `--seconds`, then prints the fast
block median (median of the fastest 30 % of blocks), the share of blocks more than 15 % slower,
and the longest slow and fast spells in seconds. Run it with nothing else busy; see
docs/latency.md ("Why the fastest pass").

    .venv/bin/python -m benchmarks.host_speed [--seconds 120]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from itertools import groupby

import numpy as np

from service.evaluation.latency import inference_session
from service.evaluation.onnx_export import export_onnx
from service.supernets.builtin import MobileNetV3DigitsSupernet
from service.supernets.elastic_mbv3 import ElasticMobileNetV3

SLOW = 1.15


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()
    supernet = MobileNetV3DigitsSupernet(ElasticMobileNetV3())
    largest = supernet.build_subnet(supernet.space.largest(), recalibrate=False)
    session = inference_session(export_onnx(largest, supernet.example_input(32)), threads=1)
    feed = {session.get_inputs()[0].name: supernet.example_input(32).numpy()}
    for _ in range(10):
        session.run(None, feed)
    started, blocks = time.perf_counter(), []
    while time.perf_counter() - started < args.seconds:
        runs = []
        for _ in range(10):
            tic = time.perf_counter()
            session.run(None, feed)
            runs.append((time.perf_counter() - tic) * 1000.0)
        blocks.append((time.perf_counter() - started, float(np.median(runs))))
    at = np.array([t for t, _ in blocks])
    ms = np.array([m for _, m in blocks])
    fast_ms = float(np.median(ms[ms <= np.percentile(ms, 30)]))
    slow = ms > SLOW * fast_ms
    spells: dict[bool, list[float]] = {True: [], False: []}
    index = 0
    for is_slow, run in groupby(slow):
        length = len(list(run))
        end = min(index + length, len(at) - 1)
        spells[bool(is_slow)].append(float(at[end] - at[index]))
        index += length
    result = {
        "seconds": args.seconds,
        "blocks": len(blocks),
        "fast_block_median_ms": fast_ms,
        "slow_block_median_ms": float(np.median(ms[slow])) if slow.any() else None,
        "slow_share": float(slow.mean()),
        "longest_slow_spells_s": sorted(spells[True], reverse=True)[:5],
        "longest_fast_spells_s": sorted(spells[False], reverse=True)[:5],
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
