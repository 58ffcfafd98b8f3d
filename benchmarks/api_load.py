"""API read latency under load: p50/p99 of GET /v1/jobs/{id}/pareto and GET /v1/jobs/{id} at 50
concurrent clients (httpx async) on a job with 100,000 stored candidates, next to GET /health.

    .venv/bin/python benchmarks/api_load.py [--candidates 100000] [--clients 50] [--requests 20]
                                            [--database-url postgresql+psycopg://...]

Without --database-url it uses a fresh SQLite file in a temporary directory; with a PostgreSQL
URL it creates a throwaway database on that server and drops it afterwards. Candidates are
inserted directly in bulk; the server is a real `hwnas serve --no-worker` subprocess.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import psycopg
from sqlalchemy import insert
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from service_processes import Server, service_env

from service.db.engine import make_engine, upgrade_database
from service.db.models import Candidate, Device, Job, MetricValue, Supernet
from service.supernets.elastic_mbv3 import ArchSpec

FRONT_SIZE = 25
CHUNK = 10_000


def populate(url: str, n_candidates: int) -> int:
    """One finished job with `n_candidates` candidates, 4 metrics each; returns the job id."""
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
                status="succeeded",
                attempts=1,
                cancel_requested=False,
                validations_used=n_candidates,
                budget=n_candidates,
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
            for metric, value, device in (
                ("accuracy", float(rng.uniform(80, 99)), None),
                ("latency@host", float(rng.uniform(0.5, 5)), 1),
                ("macs", float(rng.integers(10**6, 5 * 10**6)), None),
                ("params", float(rng.integers(10**5, 10**6)), None),
            ):
                metrics.append(
                    {
                        "candidate_id": i,
                        "metric": metric,
                        "value": value,
                        "device_id": device,
                        "source": "measured",
                    }
                )
        with engine.begin() as connection:
            connection.execute(insert(Candidate), candidates)
            connection.execute(insert(MetricValue), metrics)
    engine.dispose()
    return 1


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


async def hammer(
    base_url: str, path: str, clients: int, per_client: int
) -> tuple[list[float], float]:
    """Latencies (ms) of `clients` concurrent clients each sending `per_client` GETs."""
    latencies: list[float] = []

    async def one_client(client: httpx.AsyncClient) -> None:
        for _ in range(per_client):
            started = time.perf_counter()
            response = await client.get(path)
            latencies.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, timeout=300, limits=limits) as client:
        await client.get(path)  # warm up caches and the connection pool
        started = time.perf_counter()
        await asyncio.gather(*(one_client(client) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return latencies, elapsed


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def run(data_dir: Path, database_url: str | None, args: argparse.Namespace) -> None:
    url = database_url or f"sqlite:///{data_dir}/hwnas.db"
    upgrade_database(url)
    started = time.perf_counter()
    job_id = populate(url, args.candidates)
    print(
        f"inserted {args.candidates:,} candidates ({4 * args.candidates:,} metric rows) "
        f"in {time.perf_counter() - started:.1f} s on {url.split(':')[0]}"
    )
    server = Server(service_env(data_dir, database_url), data_dir / "server.log", worker=False)
    try:
        base = f"http://127.0.0.1:{server.port}"
        print(f"{args.clients} concurrent clients x {args.requests} requests each")
        print(f"{'endpoint':<26} {'p50 ms':>9} {'p99 ms':>9} {'mean ms':>9} {'req/s':>8}")
        for path in ("/health", f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/pareto"):
            latencies, elapsed = asyncio.run(hammer(base, path, args.clients, args.requests))
            print(
                f"{'GET ' + path:<26} {percentile(latencies, 50):>9.1f} "
                f"{percentile(latencies, 99):>9.1f} {statistics.fmean(latencies):>9.1f} "
                f"{len(latencies) / elapsed:>8.1f}"
            )
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20, help="requests per client")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="hwnas-bench-") as tmp:
        if args.database_url:
            with throwaway_postgres(args.database_url) as url:
                run(Path(tmp), url, args)
        else:
            run(Path(tmp), None, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
