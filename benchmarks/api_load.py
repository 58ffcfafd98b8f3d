"""The API's read path under load: wrk (a separate process) against a real `hwnas serve` holding a
job with 100,000 candidates, while a writer process stores validations into that same job.

    .venv/bin/python benchmarks/api_load.py [--duration 60] [--connections 1,10,50,200]
        [--databases sqlite,postgres] [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
        [--candidates 100000] [--routes health,static,job,pareto,candidates,export]
        [--workers 1] [--warmup 5] [--json benchmarks/data/api_load.json]

For each database: a fresh SQLite file, or a throwaway database on the PostgreSQL server (dropped
afterwards); the job's candidates are bulk-inserted (4 metrics each, 25 on the front), then
`hwnas serve --no-worker` starts, and a writer process (`jobs.evaluations.store_batch`, the
worker's own write) stores a batch of 8 validations every `--writer-interval-s` into the job, which
moves its front and its version. For every connection count, wrk (`apt-get install wrk`, script
`benchmarks/api_load.lua`) drives each route for `--warmup` seconds (not timed: the server's first
requests after start-up and a route's first build are not what a poller sees; their errors are
still reported), then for `--duration` seconds; the table gives p50 / p99 /
p99.9, requests/s, responses by status class and socket errors (a dropped connection is a read
error), and each route's p99 over the static file's p99 of the same run. Installs wrk with
apt-get when it is missing and the benchmark runs as root.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from service_processes import free_port, hwnas, service_env

from service.db.engine import make_engine, make_session_factory, transaction, upgrade_database
from service.db.models import Candidate, Device, Job, MetricValue, Supernet
from service.jobs.evaluations import Batch, CacheKey, store_batch
from service.search.records import Evaluation, FrontResult, IterationRecord
from service.supernets.elastic_mbv3 import ArchSpec

FRONT_SIZE = 25
CHUNK = 10_000
WRITER_ID = "bench-writer"
WRITER_BATCH = 8
LUA = Path(__file__).with_name("api_load.lua")
ROUTES = {
    "health": "/health",
    "static": "/dashboard/static/app.js",
    "job": "/v1/jobs/{job}",
    "pareto": "/v1/jobs/{job}/pareto",
    "candidates": "/v1/jobs/{job}/candidates?after={middle}&limit=100",
    "export": "/v1/jobs/{job}/export?format=csv",
}


def populate(url: str, n_candidates: int, status: str = "succeeded") -> int:
    """One job with `n_candidates` candidates, 4 metrics each; returns the job id. A `running`
    job is held by the writer (`WRITER_ID`), as a worker would hold it."""
    space = ArchSpec().search_space()
    rng = np.random.default_rng(0)
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(
            insert(Supernet).values(
                id=1,
                name="bench",
                family="mbv3-digits",
                dataset="digits",
                search_space=space.to_json(),
                exact_ranges={"macs": [1.0, 2.0]},
            )
        )
        connection.execute(insert(Device).values(id=1, name="host", kind="host", descriptor={}))
        spec = {"objectives": ["accuracy:max", "latency@host:min"], "constraints": ["macs<=3e6"]}
        connection.execute(
            insert(Job).values(
                id=1,
                supernet_id=1,
                spec=spec,
                status=status,
                attempts=1,
                worker_id=WRITER_ID if status == "running" else None,
                cancel_requested=False,
                validations_used=n_candidates,
                budget=10 * n_candidates if status == "running" else n_candidates,
            )
        )
    configs = space.sample(rng, min(n_candidates, 5000))
    for start in range(0, n_candidates, CHUNK):
        ids = range(start + 1, min(start + CHUNK, n_candidates) + 1)
        candidates, metrics = [], []
        for i in ids:
            config = configs[i % len(configs)]
            candidates.append(
                {
                    "id": i,
                    "job_id": 1,
                    "config": config,
                    "config_hash": f"{i:032x}",
                    "iteration": i // 100,
                    "origin": "linas",
                    "pareto_role": "front" if i % (n_candidates // FRONT_SIZE) == 0 else None,
                }
            )
            metrics += [
                {"candidate_id": i, "metric": m, "value": v, "device_id": d, "source": "measured"}
                for m, v, d in _metric_values(rng)
            ]
        with engine.begin() as connection:
            connection.execute(insert(Candidate), candidates)
            connection.execute(insert(MetricValue), metrics)
    if url.startswith("postgresql"):  # ids were given: move the sequences past them
        with engine.begin() as connection:
            for table in ("candidates", "metric_values"):
                connection.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
    engine.dispose()
    return 1


def _metric_values(rng: np.random.Generator) -> list[tuple[str, float, int | None]]:
    return [
        ("accuracy", float(rng.uniform(80, 99)), None),
        ("latency@host", float(rng.uniform(0.5, 5)), 1),
        ("macs", float(rng.integers(10**6, 5 * 10**6)), None),
        ("params", float(rng.integers(10**5, 10**6)), None),
    ]


def write_validations(
    url: str, n_candidates: int, interval_s: float, stop: Any, batches: Any
) -> None:
    """The writer process: every `interval_s`, one batch of `WRITER_BATCH` new validations
    stored the way the worker stores them; each batch puts its first point on the front in
    place of the oldest front point."""
    engine = make_engine(url)
    factory = make_session_factory(engine)
    rng = np.random.default_rng(1)
    configs = ArchSpec().search_space().sample(rng, 200)
    front = [
        f"{i:032x}" for i in range(1, n_candidates + 1) if i % (n_candidates // FRONT_SIZE) == 0
    ]
    used, iteration, serial = n_candidates, n_candidates // 100 + 1, 0
    while not stop.wait(interval_s):
        batch = []
        for _ in range(WRITER_BATCH):
            serial += 1
            metrics = {m: v for m, v, _ in _metric_values(rng)}
            batch.append(
                Evaluation(
                    configs[serial % len(configs)], f"w{serial:031x}", metrics, iteration, "linas"
                )
            )
        front = [*front[1:], batch[0].config_hash]
        used += WRITER_BATCH
        points = [Evaluation({}, h, {}, 0, "linas") for h in front]
        record = IterationRecord(iteration, 0.5, len(front), used)
        with transaction(factory) as session:
            store_batch(
                session,
                1,
                WRITER_ID,
                CacheKey(1, "digits"),
                {"host": 1},
                Batch(
                    batch,
                    {e.config_hash for e in batch},
                    record,
                    FrontResult(points, True, []),
                    used,
                ),
            )
        iteration += 1
        with batches.get_lock():
            batches.value += 1
    engine.dispose()


@contextmanager
def throwaway_postgres(server_url: str) -> Iterator[str]:
    """A new empty database on the server of `server_url`, dropped on exit."""
    name = f"hwnas_bench_{uuid.uuid4().hex[:10]}"
    admin = make_url(server_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def serving(env: dict[str, str], log_path: Path, workers: int) -> Iterator[str]:
    """`hwnas serve --no-worker [--workers N]` on a free port until /ready; yields its URL."""
    port = free_port()
    args = ["serve", "--no-worker", "--port", str(port), "--workers", str(workers)]
    process = hwnas(args, env, log_path)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while httpx_ready(base) is False:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def httpx_ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/ready", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def ensure_wrk() -> bool:
    """wrk on PATH, installed with apt-get when missing (as scripts/test.sh installs chromium)."""
    if shutil.which("wrk") is None and shutil.which("apt-get") and os.geteuid() == 0:
        print("wrk is missing: apt-get install wrk", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=False, env=env)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, env=env)
    return shutil.which("wrk") is not None


def run_wrk(url: str, connections: int, duration_s: int, timeout_s: int) -> dict[str, Any]:
    threads = min(2, connections)
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", f"--timeout={timeout_s}s",
        "-s", str(LUA), url,
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    seconds = result["duration_us"] / 1e6
    result["requests_per_s"] = result["requests"] / seconds if seconds else 0.0
    for key in ("p50", "p99", "p999", "max", "mean"):
        result[f"{key}_ms"] = result.pop(f"{key}_us") / 1000
    result["errors"] = sum(
        result[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
    )
    result["non_2xx"] = result["status_3xx"] + result["status_4xx"] + result["status_5xx"]
    return result


def measure(
    database: str, url: str | None, data_dir: Path, args: argparse.Namespace
) -> list[dict[str, Any]]:
    database_url = url or f"sqlite:///{data_dir}/hwnas.db"
    upgrade_database(database_url)
    started = time.perf_counter()
    job = populate(database_url, args.candidates, status="running")
    seconds = time.perf_counter() - started
    print(
        f"{database}: inserted {args.candidates:,} candidates (4 metrics each) in {seconds:.1f} s"
    )
    spawn = multiprocessing.get_context("spawn")
    stop, batches = spawn.Event(), spawn.Value("i", 0)
    writer = spawn.Process(
        target=write_validations,
        args=(database_url, args.candidates, args.writer_interval_s, stop, batches),
    )
    writer.start()
    rows: list[dict[str, Any]] = []
    env = service_env(data_dir, url)
    with serving(env, data_dir / "server.log", args.workers) as base:
        try:
            while batches.value == 0:  # the load starts once the writer is writing
                if not writer.is_alive():
                    raise RuntimeError("the writer process died before its first batch")
                time.sleep(0.2)
            for connections in args.connections:
                for route in args.routes:
                    path = ROUTES[route].format(job=job, middle=args.candidates // 2)
                    warmup = {"errors": 0, "non_2xx": 0}
                    if args.warmup > 0:  # not timed; its errors are still reported
                        warmup = run_wrk(base + path, connections, args.warmup, args.wrk_timeout_s)
                    result = run_wrk(base + path, connections, args.duration, args.wrk_timeout_s)
                    rows.append(
                        {
                            "database": database,
                            "route": route,
                            "path": path,
                            "connections": connections,
                            "warmup_s": args.warmup,
                            "warmup_errors": warmup["errors"],
                            "warmup_non_2xx": warmup["non_2xx"],
                            **result,
                        }
                    )
                    print_row(rows[-1], rows)
        finally:
            stop.set()
            writer.join(timeout=30)
    if writer.exitcode != 0:
        raise RuntimeError(f"the writer process failed (exit code {writer.exitcode})")
    log = (data_dir / "server.log").read_text()
    rows_written = count_writer_rows(database_url, args.candidates)
    print(
        f"{database}: the writer stored {rows_written} validations during the run; "
        f"tracebacks in the server log: {log.count('Traceback')}"
    )
    for row in rows:
        row["validations_written_during_run"] = rows_written
    return rows


def count_writer_rows(url: str, n_candidates: int) -> int:
    engine = make_engine(url)
    with engine.connect() as connection:
        total = connection.execute(text("SELECT count(*) FROM candidates")).scalar_one()
    engine.dispose()
    return int(total) - n_candidates


HEADER = (
    f"{'db':<8} {'conns':>5} {'route':<10} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} "
    f"{'req/s':>8} {'2xx':>7} {'non-2xx':>7} {'errors':>6} {'p99/static':>10}"
)


def print_row(row: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    static = next(
        (
            r
            for r in rows
            if r["route"] == "static"
            and r["database"] == row["database"]
            and r["connections"] == row["connections"]
        ),
        None,
    )
    ratio = row["p99_ms"] / static["p99_ms"] if static and static["p99_ms"] else float("nan")
    row["p99_over_static_p99"] = ratio
    print(
        f"{row['database']:<8} {row['connections']:>5} {row['route']:<10} {row['p50_ms']:>8.1f} "
        f"{row['p99_ms']:>8.1f} {row['p999_ms']:>9.1f} {row['requests_per_s']:>8.0f} "
        f"{row['status_2xx']:>7} {row['non_2xx']:>7} {row['errors']:>6} {ratio:>10.2f}",
        flush=True,
    )
    if row["warmup_errors"] or row["warmup_non_2xx"]:
        print(
            f"  warm-up: {row['warmup_errors']} errors, {row['warmup_non_2xx']} non-2xx",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--duration", type=int, default=60, help="seconds per route and connection count"
    )
    parser.add_argument("--connections", type=_ints, default=[1, 10, 50, 200])
    parser.add_argument("--routes", type=_names, default=list(ROUTES))
    parser.add_argument("--databases", type=_names, default=["sqlite", "postgres"])
    parser.add_argument(
        "--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=1, help="server processes (PostgreSQL)")
    parser.add_argument("--writer-interval-s", type=float, default=1.0)
    parser.add_argument("--wrk-timeout-s", type=int, default=30)
    parser.add_argument(
        "--warmup",
        type=int,
        default=5,
        help="seconds of the same load before each timed run, not timed (0: none)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write every row here")
    args = parser.parse_args()
    if not ensure_wrk():
        parser.error("wrk is not installed and apt-get could not install it (apt-get install wrk)")
    if "static" in args.routes:  # measured first at each connection count: the others' yardstick
        args.routes = ["static"] + [r for r in args.routes if r != "static"]
    load_before = os.getloadavg()
    print(
        f"load average before: {' '.join(f'{x:.2f}' for x in load_before)}; {os.cpu_count()} CPUs"
    )
    print(HEADER)
    rows: list[dict[str, Any]] = []
    for database in args.databases:
        with tempfile.TemporaryDirectory(prefix="hwnas-bench-") as tmp:
            if database == "postgres":
                with throwaway_postgres(args.postgres_url) as url:
                    rows += measure(database, url, Path(tmp), args)
            else:  # `hwnas serve` refuses --workers > 1 on SQLite
                rows += measure(database, None, Path(tmp), _with(args, workers=1))
    load_after = os.getloadavg()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in load_after)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        summary = {
            "command": " ".join(sys.argv),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": load_after,
            "rows": rows,
        }
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    return 0


def _with(args: argparse.Namespace, **changes: Any) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), **changes})


def _ints(text_value: str) -> list[int]:
    return [int(part) for part in text_value.split(",") if part]


def _names(text_value: str) -> list[str]:
    return [part.strip() for part in text_value.split(",") if part.strip()]


if __name__ == "__main__":
    sys.exit(main())
