"""`hwnas demo`: the whole product end to end over real HTTP on a throwaway SQLite service.

Starts `hwnas serve` as a subprocess and, through `service.client`, registers the built-in
supernet and the host device, submits accuracy:max vs latency@host:min under a MACs constraint,
shows a progress bar (the dashboard at the server's `/` shows the job live), then prints the
Pareto front and writes it as CSV and a PNG plot.
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from service.api.schemas.catalog import SupernetDetailOut
from service.client import Client, HwnasError, Job

SUPERNET_NAME = "mbv3-digits"
HOST_DEVICE = "host"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data_dir: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """`hwnas serve` on SQLite under `data_dir`, logging to `log_path`."""
    env = {**os.environ, "HWNAS_DATA_DIR": str(data_dir)}
    env.pop("HWNAS_DATABASE_URL", None)
    command = [sys.executable, "-m", "service.cli", "serve", "--port", str(port)]
    with log_path.open("wb") as log_file:
        return subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)


def wait_healthy(client: Client, server: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with status {server.returncode}")
        try:
            client.health()
            return
        except HwnasError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"server not healthy after {timeout_s:.0f} s")


def run_demo(
    budget: int,
    out_dir: Path,
    data_dir: Path | None,
    macs_max: float | None,
    port: int,
    timeout_s: float,
    checkpoint: str | None = None,
) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    temp = None if data_dir else tempfile.TemporaryDirectory(prefix="hwnas-demo-")
    data_dir = data_dir or Path(temp.name)  # type: ignore[union-attr]
    port = port or free_port()
    server = start_server(data_dir, port, out_dir / "server.log")
    print(f"service starting on http://127.0.0.1:{port} (data in {data_dir}, log in {out_dir})")
    try:
        # The server inherits this environment: with HWNAS_ADMIN_TOKEN set, authentication is on.
        admin_token = os.environ.get("HWNAS_ADMIN_TOKEN")
        with Client(f"http://127.0.0.1:{port}", token=admin_token) as client:
            wait_healthy(client, server, 120)
            return _search(client, budget, out_dir, macs_max, timeout_s, checkpoint)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        if temp is not None:
            temp.cleanup()


def _search(
    client: Client,
    budget: int,
    out_dir: Path,
    macs_max: float | None,
    timeout_s: float,
    checkpoint: str | None,
) -> int:
    supernet = _supernet(client, checkpoint)
    if HOST_DEVICE not in {d.name for d in client.devices()}:
        client.register_device(HOST_DEVICE, "host")
    low, high = supernet.exact_ranges["macs"]
    macs_max = macs_max or round(low + 0.6 * (high - low), -3)
    objectives = ["accuracy:max", f"latency@{HOST_DEVICE}:min"]
    constraints = [f"macs<={macs_max:g}"]
    print(
        f"search space: {supernet.n_genes} genes, 10^{supernet.log10_size:.1f} networks; "
        f"MACs {low:,.0f}..{high:,.0f}"
    )
    job = client.submit_job(SUPERNET_NAME, objectives, constraints, budget, seed=0)
    print(f"submitted {job.path}: {objectives} subject to {constraints}")
    print(f"watch it at {client.server}/#/jobs/{job.id}")
    try:
        final = job.wait(progress=True, poll_s=2, timeout_s=timeout_s)
    except TimeoutError:
        job.cancel()
        raise TimeoutError(f"job did not finish within {timeout_s:.0f} s; cancelled it") from None
    if final.status != "succeeded":
        print(f"job ended {final.status}: {final.error}")
        return 1
    pareto = job.pareto().model_dump(mode="json")
    _print_front(pareto)
    _write_outputs(job, pareto, out_dir)
    return 0


def _supernet(client: Client, checkpoint: str | None) -> SupernetDetailOut:
    """The built-in supernet, registered unless it already is."""
    try:
        return client.register_supernet(SUPERNET_NAME, "mbv3-digits", checkpoint)
    except HwnasError as exc:
        if exc.error != "conflict":
            raise
        return client.supernet(SUPERNET_NAME)


COLUMNS = ("accuracy", "latency@host", "macs", "params")


def _print_front(pareto: dict[str, Any]) -> None:
    points = pareto["points"] if pareto["feasible"] else pareto["closest"]
    title = "Pareto front" if pareto["feasible"] else "no feasible point; closest points"
    print(f"\n{title} ({len(points)} points, validated, measured on the host):")
    print(f"{'candidate':>9}  {'accuracy %':>10}  {'latency ms':>10}  {'MACs':>12}  {'params':>9}")
    for point in points:
        m = {k: v["value"] for k, v in point["metrics"].items()}
        print(
            f"{point['id']:>9}  {m.get('accuracy', float('nan')):>10.2f}  "
            f"{m.get('latency@host', float('nan')):>10.3f}  {m.get('macs', 0):>12,.0f}  "
            f"{m.get('params', 0):>9,.0f}"
        )


def _write_outputs(job: Job, pareto: dict[str, Any], out_dir: Path) -> None:
    front_csv = out_dir / "pareto.csv"
    with front_csv.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["candidate_id", *COLUMNS, "source", "config"])
        for point in pareto["points"]:
            metrics = point["metrics"]
            writer.writerow(
                [
                    point["id"],
                    *(metrics.get(c, {}).get("value", "") for c in COLUMNS),
                    "measured",
                    point["config"],
                ]
            )
    export = job.export("json")
    (out_dir / "candidates.csv").write_text(job.export("csv"))
    _plot(export["candidates"], pareto["points"], pareto["constraints"], out_dir / "pareto.png")
    print(f"\nwrote {front_csv}, {out_dir / 'candidates.csv'} and {out_dir / 'pareto.png'}")


def _feasible(candidate: dict[str, Any], constraints: list[str]) -> bool:
    from service.search import parse_constraint

    for text in constraints:
        constraint = parse_constraint(text)
        value = candidate["metrics"].get(constraint.metric, {}).get("value")
        if value is None:
            return False
        if value > constraint.value if constraint.op == "<=" else value < constraint.value:
            return False
    return True


def _plot(
    candidates: list[dict[str, Any]],
    front: list[dict[str, Any]],
    constraints: list[str],
    path: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    def xy(points: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
        usable = [p for p in points if {"latency@host", "accuracy"} <= set(p["metrics"])]
        return (
            [p["metrics"]["latency@host"]["value"] for p in usable],
            [p["metrics"]["accuracy"]["value"] for p in usable],
        )

    figure, axes = plt.subplots(figsize=(7, 5))
    feasible = [c for c in candidates if _feasible(c, constraints)]
    infeasible = [c for c in candidates if not _feasible(c, constraints)]
    axes.scatter(*xy(feasible), s=14, c="0.55", label="validated, feasible")
    axes.scatter(*xy(infeasible), s=14, c="0.8", marker="x", label=f"violates {constraints}")
    front_x, front_y = xy(sorted(front, key=lambda p: p["metrics"]["latency@host"]["value"]))
    axes.plot(front_x, front_y, "o-", c="tab:red", drawstyle="steps-post", label="Pareto front")
    axes.set_xlabel("latency on host (ms, measured)")
    axes.set_ylabel("accuracy (%)")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
