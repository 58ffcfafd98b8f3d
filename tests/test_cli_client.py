"""`hwnas jobs | supernets | devices` against a real `hwnas serve`, every command with -f json.

Commands run in this process through `service.cli.main` (the real parser and handlers, real HTTP);
one runs as a subprocess to check `HWNAS_SERVER`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_processes import FAST_HOST, Server, service_env

from service.cli import main


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("cli")
    server = Server(service_env(data_dir, heartbeat_interval_s="0.5"), data_dir / "server.log")
    body = {"name": "mbv3-digits", "family": "mbv3-digits"}
    assert server.client.post("/v1/supernets", json=body).status_code == 201
    host = {"name": "host", "kind": "host", "descriptor": FAST_HOST}
    assert server.client.post("/v1/devices", json=host).status_code == 201
    yield server
    server.stop()


def hwnas(server: Server, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Exit status and stdout; stderr stays in `capsys` for the caller."""
    capsys.readouterr()
    status = main([*args, "--server", f"http://127.0.0.1:{server.port}"])
    captured = capsys.readouterr()
    sys.stderr.write(captured.err)
    return status, captured.out


def as_json(server: Server, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    status, out = hwnas(server, capsys, *args, "-f", "json")
    assert status == 0, out
    return json.loads(out)


def test_catalog_lists(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    supernets = as_json(server, capsys, "supernets", "list")
    assert [s["name"] for s in supernets] == ["mbv3-digits"]
    devices = as_json(server, capsys, "devices", "list")
    assert [(d["name"], d["kind"], d["can_measure_latency"]) for d in devices] == [
        ("host", "host", True)
    ]
    status, table = hwnas(server, capsys, "devices", "list")
    assert status == 0 and table.splitlines()[0].split()[:3] == ["id", "name", "kind"]


def test_job_commands(server: Server, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    submit = ["jobs", "submit", "--supernet", "mbv3-digits", "--objective", "macs:min"]
    submit += ["--objective", "params:max", "--constraint", "macs<=3e6", "--budget", "20"]
    submit += ["--tactic", "random", "--batch-size", "10"]
    job = as_json(server, capsys, *submit)
    assert job["status"] in ("queued", "running") and job["budget"] == 20
    job_id = str(job["id"])

    watched = as_json(server, capsys, "jobs", "watch", job_id, "--poll-s", "0.5")
    assert watched["status"] == "succeeded" and watched["validations_used"] == 20
    assert [it["iteration"] for it in watched["iterations"]] == [0, 1]
    shown = as_json(server, capsys, "jobs", "show", job_id)
    assert shown["id"] == job["id"] and shown["progress"] == 1.0
    listed = as_json(server, capsys, "jobs", "list", "--status", "succeeded")
    assert [j["id"] for j in listed] == [job["id"]]
    assert as_json(server, capsys, "jobs", "list", "--status", "failed") == []

    pareto = as_json(server, capsys, "jobs", "pareto", job_id)
    assert pareto["feasible"] and pareto["points"]
    assert all(p["metrics"]["macs"]["value"] <= 3e6 for p in pareto["points"])
    status, front_csv = hwnas(server, capsys, "jobs", "pareto", job_id, "-f", "csv")
    rows = list(csv.DictReader(io.StringIO(front_csv)))
    assert status == 0 and [int(r["candidate_id"]) for r in rows] == [
        p["id"] for p in pareto["points"]
    ]
    assert rows[0]["macs_source"] == "measured"

    exported = as_json(server, capsys, "jobs", "export", job_id)
    assert len(exported["candidates"]) == 20 and exported["job"]["id"] == job["id"]
    out = tmp_path / "job.csv"
    status, _ = hwnas(server, capsys, "jobs", "export", job_id, "-f", "csv", "-o", str(out))
    assert status == 0 and len(out.read_text().splitlines()) == 21

    status, table = hwnas(server, capsys, "jobs", "show", job_id)
    assert status == 0 and "succeeded" in table and "macs:min, params:max" in table


def test_cancel_and_errors(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    submit = ["jobs", "submit", "--supernet", "mbv3-digits", "--objective", "macs:min"]
    job = as_json(server, capsys, *submit, "--budget", "5000", "--tactic", "random")
    cancelled = as_json(server, capsys, "jobs", "cancel", str(job["id"]))
    assert cancelled["cancel_requested"] or cancelled["status"] == "cancelled"
    watched = hwnas(server, capsys, "jobs", "watch", str(job["id"]), "-f", "json")
    assert watched[0] == 1 and json.loads(watched[1])["status"] == "cancelled"

    status, _ = hwnas(server, capsys, "jobs", "show", "999", "-f", "json")
    assert status == 1 and "error: not_found: job 999" in capsys.readouterr().err
    status, _ = hwnas(server, capsys, *submit, "--budget", "0", "-f", "json")
    assert status == 1 and "budget_out_of_range" in capsys.readouterr().err


def test_server_from_environment(server: Server) -> None:
    env = {**os.environ, "HWNAS_SERVER": f"http://127.0.0.1:{server.port}"}
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "supernets", "list", "-f", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(result.stdout)[0]["family"] == "mbv3-digits"
