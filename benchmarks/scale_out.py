"""Scale-out: one LINAS job (fixed seed and budget) through the worker with the local executor and
with Ray on 1 and 2 accuracy actors, synchronous and asynchronous batches.

Each run is the real service path: a fresh SQLite database, the built-in supernet with its shipped
checkpoint, `run_worker` with `HWNAS_EXECUTOR`, networks validated for real (torch accuracy on the
held-out split, exact MACs). Ray runs in this process (`ray.init(num_cpus=...)`), actors loading
the supernet once each.

Figures per run: validations per minute from the first stored validation to the last (actor
start-up excluded; the job's wall time is printed beside it), speed-up over the 1-actor run, and
the hypervolume after each validation in the order they were stored, on one fixed scale
(accuracy 80..100 %, MACs over the space's exact range), with validations-to-target: the first
count at which a run reaches 99 % of the synchronous runs' median final hypervolume (over the
seeds of the 2-actor synchronous run where it ran, else the first run's). `--more-seeds`
repeats the Ray runs on further seeds (sample efficiency of asynchronous batches needs several;
each seed's speed-up is over its own 1-actor run, which validates the same networks as its
synchronous 2-actor run).

    .venv/bin/python -m benchmarks.scale_out [--budget 20] [--more-seeds 1,2] [--out FILE]

`--store-rate DATABASE_URL` instead times what the database takes per finished validation (one
`store_validations` transaction: candidate, metric values, cache rows, the lease-guarded progress
update) and per told round (`store_round`), for the 64-GPU plan in docs/scale-out.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.environment import library_versions
from service.api.schemas.jobs import JobIn
from service.catalog import supernets as supernet_catalog
from service.config import Settings
from service.db.engine import make_engine, make_session_factory, transaction, upgrade_database
from service.evaluation.validation import exact_metrics
from service.jobs import queue
from service.jobs.evaluations import stored_evaluations
from service.jobs.specs import JobSpec, check_job_request
from service.search.engine import SearchEngine
from service.supernets.space import SearchSpace
from service.worker.runner import run_worker

RUNS = (  # label, executor, accuracy actors, batch return fraction
    ("local, synchronous", "local", 0, 1.0),
    ("ray 1 actor, synchronous", "ray", 1, 1.0),
    ("ray 2 actors, synchronous", "ray", 2, 1.0),
    ("ray 2 actors, asynchronous (1/2 back)", "ray", 2, 0.5),
)
TARGET_FRACTION = 0.99
ONE_ACTOR, SYNC_2, ASYNC_2 = 1, 2, 3  # the Ray runs of RUNS, repeated on --more-seeds


def run_job(
    label: str, executor: str, actors: int, fraction: float, args: Any, seed: int
) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="hwnas-scale-out-"))
    url = f"sqlite:///{data_dir}/hwnas.db"
    upgrade_database(url)
    factory = make_session_factory(make_engine(url))
    with transaction(factory) as session:
        supernet_catalog.register_supernet(session, "digits", "mbv3-digits", None)
        request = JobIn(
            supernet="digits",
            objectives=["accuracy:max", "macs:min"],
            budget=args.budget,
            seed=seed,
            initial_size=args.initial,
            batch_size=args.batch,
            hv_bounds={"accuracy": (80.0, 100.0)},
        )
        checked = check_job_request(session, request)
        job_id = queue.create_job(
            session, checked.supernet.id, checked.spec.to_json(), checked.spec.budget
        ).id
    settings = Settings(
        data_dir=data_dir,
        database_url=url,
        executor=executor,  # type: ignore[arg-type]
        ray_accuracy_actors=max(actors, 1),
        batch_return_fraction=fraction,
        poll_interval_s=0.2,
        heartbeat_interval_s=0.5,
    )
    progress: list[tuple[float, int]] = []
    stop, done = threading.Event(), threading.Event()

    def watch() -> None:
        while not done.wait(0.2):
            with transaction(factory) as session:
                used = queue.get_job(session, job_id).validations_used
            if not progress or progress[-1][1] != used:
                progress.append((time.monotonic(), used))

    watcher = threading.Thread(target=watch, daemon=True)
    started = time.monotonic()
    watcher.start()
    run_worker(factory, settings, stop, on_idle=stop.set)
    wall_s = time.monotonic() - started
    done.set()
    watcher.join()
    figures = _figures(factory, job_id, progress)
    return {"label": label, "seed": seed, "wall_s": wall_s, **figures}


def _figures(factory: Any, job_id: int, progress: list[tuple[float, int]]) -> dict[str, Any]:
    with transaction(factory) as session:
        job = queue.get_job(session, job_id)
        supernet = supernet_catalog.get_supernet(session, job.supernet_id)
        stored = stored_evaluations(session, job_id)
        status, spec = job.status, JobSpec.from_json(job.spec).search
    loaded = supernet_catalog.loaded_supernet(supernet.family, supernet.checkpoint_uri)
    engine = SearchEngine(
        SearchSpace.from_json(supernet.search_space),
        spec,
        exact_metrics=lambda c: exact_metrics(loaded, c),
        history=stored,
    )
    first = next(p for p in progress if p[1] >= 1)
    last = progress[-1]
    per_minute = 60.0 * (last[1] - first[1]) / max(last[0] - first[0], 1e-9)
    trajectory = [engine.hypervolume_after(n) for n in range(1, len(stored) + 1)]
    return {
        "status": str(status),
        "validations": len(stored),
        "validations_per_minute": per_minute,
        "hv_per_validation": trajectory,
    }


def _over_seeds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the seeds of one run (never reaching the target counts as budget + 1)."""
    if not runs:
        return {}
    reach = [r["validations_to_target"] or len(r["hv_per_validation"]) + 1 for r in runs]
    return {
        "seeds": [r["seed"] for r in runs],
        "validations_to_target": statistics.median(reach),
        "validations_per_minute": statistics.median(r["validations_per_minute"] for r in runs),
        "speed_up_over_1_actor": statistics.median(r["speed_up_over_1_actor"] for r in runs),
        "final_hv": statistics.median(r["hv_per_validation"][-1] for r in runs),
    }


def validations_to(target: float, trajectory: list[float]) -> int | None:
    return next((n for n, hv in enumerate(trajectory, 1) if hv >= target), None)


def store_rate(url: str, n: int = 300) -> None:
    """Seconds per `store_validations` / `store_round` transaction on `url` (a migrated DB)."""
    from service.jobs.evaluations import CacheKey, Validated, store_round, store_validations
    from service.search.records import Evaluation, FrontResult, IterationRecord

    factory = make_session_factory(make_engine(url))
    with transaction(factory) as session:
        supernet = supernet_catalog.register_supernet(
            session, f"store-rate-{time.time_ns()}", "mbv3-digits", None
        )
        request = JobIn(supernet=supernet.name, objectives=["accuracy:max", "macs:min"], budget=n)
        checked = check_job_request(session, request)
        job_id = queue.create_job(session, supernet.id, checked.spec.to_json(), n).id
    with transaction(factory) as session:
        assert queue.claim_next_job(session, "store-rate") == job_id
    key = CacheKey(supernet.id, supernet.dataset)
    started = time.perf_counter()
    for i in range(n):
        evaluation = Evaluation(
            {"i": i},
            f"{time.time_ns():x}{i}",
            {"accuracy": 90.0, "macs": 1e6, "params": 2e5},
            1,
            "linas",
        )
        validated = Validated([evaluation], {evaluation.config_hash}, i + 1)
        with transaction(factory) as session:
            store_validations(session, job_id, "store-rate", key, {}, validated)
    per_validation = (time.perf_counter() - started) / n
    started = time.perf_counter()
    for iteration in range(50):
        record = IterationRecord(iteration, 0.5, 10, n, {}, 0.1, 8)
        with transaction(factory) as session:
            store_round(session, job_id, "store-rate", record, FrontResult([], True, [], 0.5), n)
    per_round = (time.perf_counter() - started) / 50
    print(f"load average {os.getloadavg()}")
    print(f"store_validations: {1000 * per_validation:.1f} ms each ({1 / per_validation:.0f}/s)")
    print(f"store_round (front of {n} candidates): {1000 * per_round:.1f} ms each")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--initial", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--more-seeds", default="", help="seeds for the Ray runs, e.g. 1,2")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs the in-process Ray may use")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--runs", default="0,1,2,3", help="which of RUNS, in this order")
    parser.add_argument("--store-rate", metavar="DATABASE_URL", default=None)
    args = parser.parse_args()
    if args.store_rate:
        store_rate(args.store_rate)
        return
    import ray

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    load_before = os.getloadavg()
    plan = [(args.seed, int(i)) for i in args.runs.split(",")]
    more = [int(s) for s in args.more_seeds.split(",") if s]
    plan += [(seed, run) for seed in more for run in (ONE_ACTOR, SYNC_2, ASYNC_2)]
    results = [run_job(*RUNS[run], args, seed) for seed, run in plan]
    load_after = os.getloadavg()
    ray.shutdown()
    synchronous = [r for r in results if r["label"] == RUNS[SYNC_2][0]] or results[:1]
    target = TARGET_FRACTION * statistics.median(r["hv_per_validation"][-1] for r in synchronous)
    one_actor = {
        r["seed"]: r["validations_per_minute"] for r in results if r["label"] == RUNS[ONE_ACTOR][0]
    }
    print(f"load average before {load_before}, after {load_after}; cpus {os.cpu_count()}")
    print(f"target HV {target:.4f} ({TARGET_FRACTION:.0%} of the synchronous runs' median final)")
    header = f"{'val/min':>8} {'×1 actor':>9} {'wall s':>7} {'to target':>10} {'HV end':>7}"
    print(f"{'run':40} {'seed':>4} {header}")
    for r in results:
        r["speed_up_over_1_actor"] = r["validations_per_minute"] / one_actor.get(
            r["seed"], float("nan")
        )
        r["validations_to_target"] = validations_to(target, r["hv_per_validation"])
        print(
            f"{r['label']:40} {r['seed']:4} {r['validations_per_minute']:8.2f} "
            f"{r['speed_up_over_1_actor']:9.2f} {r['wall_s']:7.1f} "
            f"{r['validations_to_target']!s:>10} {r['hv_per_validation'][-1]:7.4f}"
        )
    summary = {
        RUNS[i][0]: _over_seeds([r for r in results if r["label"] == RUNS[i][0]])
        for i in (SYNC_2, ASYNC_2)
    }
    for label, figures in summary.items():
        if figures:
            print(f"{label}: median over seeds {figures}")
    if args.out:
        report = {
            "args": {k: str(v) for k, v in vars(args).items()},
            "load_average": {"before": load_before, "after": load_after},
            "target_hv": target,
            "runs": results,
            "over_seeds": summary,
            "libraries": library_versions(),
        }
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
