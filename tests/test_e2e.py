"""End to end over real HTTP: `hwnas serve` (uvicorn, embedded worker, SQLite) runs a search."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import onnxruntime as ort
import pytest
from service_processes import FAST_HOST, Server, service_env, wait_for


@pytest.fixture
def server(tmp_path: Path, random_checkpoint: str) -> Iterator[Server]:
    # Client-given checkpoints are names inside the checkpoint directory.
    checkpoints = str(Path(random_checkpoint).parent)
    env = service_env(tmp_path, heartbeat_interval_s="0.5", checkpoint_dir=checkpoints)
    server = Server(env, tmp_path / "server.log")
    yield server
    server.stop()


def test_search_job_over_http(server: Server, random_checkpoint: str) -> None:
    client = server.client
    body = {"name": "digits", "family": "mbv3-digits", "checkpoint": Path(random_checkpoint).name}
    supernet = client.post("/v1/supernets", json=body).json()
    low, high = supernet["exact_ranges"]["macs"]
    host = {"name": "host", "kind": "host", "descriptor": FAST_HOST}
    assert client.post("/v1/devices", json=host).status_code == 201
    macs_max = low + 0.7 * (high - low)
    request = {
        "supernet": "digits",
        "objectives": ["accuracy:max", "latency@host:min"],
        "constraints": [f"macs<={macs_max}"],
        "budget": 4,
        "tactic": "random",
        "batch_size": 2,
    }
    submitted = client.post("/v1/jobs", json=request)
    assert submitted.status_code == 202
    location = submitted.headers["Location"]

    def finished() -> dict | None:
        job = client.get(location).json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    job = wait_for(finished, 400, "the job to finish", interval_s=1)
    assert isinstance(job, dict)
    assert job["status"] == "succeeded", job["error"]
    assert (job["validations_used"], job["progress"]) == (4, 1.0)
    assert [it["iteration"] for it in job["iterations"]] == [0, 1]
    assert job["iterations"][-1]["validations_used"] == 4
    assert all(it["hypervolume"] is not None for it in job["iterations"])

    pareto = client.get(f"{location}/pareto").json()
    points = pareto["points"] if pareto["feasible"] else pareto["closest"]
    assert points
    for point in pareto["points"]:
        assert point["metrics"]["macs"]["value"] <= macs_max
        assert point["metrics"]["latency@host"]["device"] == "host"
        assert point["metrics"]["latency@host"]["source"] == "measured"
        assert point["metrics"]["accuracy"]["device"] is None

    first = client.get(f"{location}/candidates", params={"limit": 3}).json()
    assert len(first["items"]) == 3 and first["next_after"] == first["items"][-1]["id"]
    rest = client.get(f"{location}/candidates", params={"after": first["next_after"]}).json()
    assert len(rest["items"]) == 1 and rest["next_after"] is None
    all_ids = [c["id"] for c in first["items"] + rest["items"]]

    exported = list(csv.DictReader(io.StringIO(client.get(f"{location}/export?format=csv").text)))
    assert [int(row["candidate_id"]) for row in exported] == all_ids
    assert {"accuracy", "latency@host", "macs", "params", "config"} <= set(exported[0])
    as_json = client.get(f"{location}/export", params={"format": "json"}).json()
    assert [c["id"] for c in as_json["candidates"]] == all_ids

    model = client.get(f"{location}/candidates/{points[0]['id']}/model.onnx")
    assert model.status_code == 200
    session = ort.InferenceSession(model.content, providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == 1

    refused = client.post(f"{location}/cancel")
    assert refused.status_code == 409 and "succeeded" in refused.json()["detail"]
