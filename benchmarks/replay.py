"""A short fixed search benchmark whose figures must not move: the CI replay check.

LINAS, NSGA-II and random search on the synthetic validator (`service.search.synthetic`, with its
exact `macs`), seeds 0-2, budget 40, hypervolume with fixed bounds. The figures (hypervolume after
every 10 validations, per tactic and seed, and a digest of the validated networks in order) are
committed in `benchmarks/data/replay_synthetic.json`; `tests/test_replay.py` reruns this module,
in-process and in subprocesses under other BLAS thread counts, OpenBLAS kernels and numpy SIMD
paths, and fails if any figure differs in any digit. A change that moves them must rewrite the
JSON in the same commit and say why:

    .venv/bin/python -m benchmarks.replay --write
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from service.search import SearchSpec, parse_objective, run_search
from service.search.synthetic import SyntheticValidator, synthetic_macs
from service.supernets.elastic_mbv3 import ArchSpec

DATA = Path(__file__).resolve().parent / "data" / "replay_synthetic.json"
TACTICS = ("linas", "evolutionary", "random")
SEEDS = (0, 1, 2)
BUDGET = 40
CHECKPOINTS = (10, 20, 30, 40)
# Fixed bounds around the smallest and largest networks (accuracy 68.9 / 97.7 %,
# latency 3.4 / 49.0 ms).
HV_BOUNDS = {"accuracy": (66.0, 100.0), "latency@host": (2.7, 59.0)}


def run_one(tactic: str, seed: int) -> dict[str, Any]:
    space = ArchSpec().search_space()
    spec = SearchSpec(
        [parse_objective("accuracy:max"), parse_objective("latency@host:min")],
        budget=BUDGET,
        tactic=tactic,  # type: ignore[arg-type]
        seed=seed,
        hv_bounds=HV_BOUNDS,
    )
    engine = run_search(space, spec, SyntheticValidator(space), exact_metrics=synthetic_macs(space))
    hashes = [e.config_hash for e in engine.evaluations]
    return {
        "hv": {str(n): engine.hypervolume_after(n) for n in CHECKPOINTS},
        "networks": hashlib.sha256(",".join(hashes).encode()).hexdigest()[:16],
        "models": sorted(
            {
                f"{metric}={row['model']}"
                for record in engine.iterations
                for metric, row in record.predictor_scores.items()
            }
        ),
    }


def run(tactics: Sequence[str] = TACTICS, seeds: Sequence[int] = SEEDS) -> dict[str, Any]:
    runs = {t: {str(s): run_one(t, s) for s in seeds} for t in tactics}
    summary = {}
    for tactic, by_seed in runs.items():
        final = [r["hv"][str(BUDGET)] for r in by_seed.values()]
        summary[tactic] = {"median": statistics.median(final), "min": min(final), "max": max(final)}
    return {
        "benchmark": "replay_synthetic",
        "validation": "SYNTHETIC validation function (not a measurement)",
        "budget": BUDGET,
        "hv_bounds": {k: list(v) for k, v in HV_BOUNDS.items()},
        "runs": runs,
        f"hv@{BUDGET}": summary,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite {DATA.name}")
    parser.add_argument("--tactics", type=lambda s: s.split(","), default=list(TACTICS))
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=SEEDS)
    args = parser.parse_args(argv)
    result = run(args.tactics, args.seeds)
    text = json.dumps(result, indent=1, sort_keys=True)
    if args.write:
        DATA.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
