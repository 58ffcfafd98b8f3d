"""The dashboard's read routes over real HTTP on a job of 3,000 stored candidates (`hwnas serve
--no-worker`, SQLite filled as `benchmarks/api_load.py` fills it), and the static files at `/`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_processes import Server, service_env

from service.db.engine import upgrade_database

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from api_load import populate

N = 3000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("sampling")
    url = f"sqlite:///{data_dir}/hwnas.db"
    upgrade_database(url)
    populate(url, N)
    server = Server(service_env(data_dir), data_dir / "server.log", worker=False)
    yield server
    server.stop()


def test_plot_sends_the_front_and_a_stable_bounded_sample(server: Server) -> None:
    plot = server.client.get("/v1/dashboard/jobs/1/plot", params={"sample": 500}).json()
    front_ids = {p["id"] for p in plot["front"]}
    sample = plot["sample"]
    assert plot["total"] == N and plot["sampled"] and len(front_ids) == 25
    assert 350 <= len(sample["ids"]) <= 500 and not front_ids & set(sample["ids"])
    assert sample["ids"] == sorted(set(sample["ids"]))
    assert set(sample["values"]) == {"accuracy", "latency@host", "macs", "params"}
    assert all(len(column) == len(sample["ids"]) for column in sample["values"].values())
    for macs, feasible in zip(sample["values"]["macs"], sample["feasible"], strict=True):
        assert feasible == (macs <= 3e6)  # the populated job's constraint
    assert plot["front"][0]["config"] and plot["front"][0]["metrics"]["macs"]["source"]
    again = server.client.get("/v1/dashboard/jobs/1/plot", params={"sample": 500}).json()
    assert again["sample"]["ids"] == sample["ids"]
    everything = server.client.get("/v1/dashboard/jobs/1/plot", params={"sample": 5000}).json()
    assert not everything["sampled"] and len(everything["sample"]["ids"]) == N - 25


def test_candidate_and_errors(server: Server) -> None:
    candidate = server.client.get("/v1/dashboard/jobs/1/candidates/7").json()
    assert candidate["id"] == 7 and "s0.depth" in candidate["config"]
    assert candidate["metrics"]["latency@host"]["method"] == "host"
    missing = server.client.get("/v1/dashboard/jobs/1/candidates/999999")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    assert server.client.get("/v1/dashboard/jobs/9/plot").json()["error"] == "not_found"
    too_many = server.client.get("/v1/dashboard/jobs/1/plot", params={"sample": 10**6})
    assert (too_many.status_code, too_many.json()["error"]) == (422, "invalid_request")


def test_page_and_static_files(server: Server) -> None:
    index = server.client.get("/")
    assert index.status_code == 200 and "text/html" in index.headers["content-type"]
    for path in ("app.js", "job.js", "app.css", "vendor/plotly-basic-4.1.1.min.js"):
        assert server.client.get(f"/dashboard/static/{path}").status_code == 200, path
    licence = server.client.get("/dashboard/static/vendor/LICENSE-plotly.js.txt").text
    assert "MIT License" in licence
