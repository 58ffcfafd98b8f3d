"""Over real HTTP (`hwnas serve`, embedded worker, SQLite): a search job on the built-in
bert-digits, its shipped checkpoint uploaded as a multipart form (a BERT-layout state dict, as a
user's own would be), measured onnxruntime latency and a MACs constraint."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_processes import FAST_HOST, Server, service_env, wait_for

from service.supernets.bert_digits import DEFAULT_CHECKPOINT


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    server = Server(service_env(tmp_path, heartbeat_interval_s="0.5"), tmp_path / "server.log")
    yield server
    server.stop()


def test_a_search_job_on_bert_digits_over_http(server: Server) -> None:
    client = server.client
    content = DEFAULT_CHECKPOINT.read_bytes()
    supernet = client.post(
        "/v1/supernets",
        data={"name": "bert", "family": "bert-digits"},
        files={"checkpoint": ("bert_digits.pt", content, "application/octet-stream")},
    )
    assert supernet.status_code == 201, supernet.text
    assert supernet.json()["checkpoint_sha256"] == hashlib.sha256(content).hexdigest()
    assert supernet.json()["checkpoint_uri"].startswith(str(server.data_dir / "artifacts"))
    low, high = supernet.json()["exact_ranges"]["macs"]
    host = {"name": "host", "kind": "host", "descriptor": FAST_HOST}
    assert client.post("/v1/devices", json=host).status_code == 201
    macs_max = low + 0.5 * (high - low)
    request = {
        "supernet": "bert",
        "objectives": ["accuracy:max", "latency@host:min"],
        "constraints": [f"macs<={macs_max}"],
        "budget": 4,
        "tactic": "random",
        "batch_size": 2,
    }
    submitted = client.post("/v1/jobs", json=request)
    assert submitted.status_code == 202, submitted.text
    location = submitted.headers["Location"]

    def finished() -> dict | None:
        job = client.get(location).json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    job = wait_for(finished, 300, "the job to finish", interval_s=1)
    assert isinstance(job, dict)
    assert job["status"] == "succeeded", job["error"]
    pareto = client.get(f"{location}/pareto").json()
    assert pareto["feasible"] and pareto["points"]
    for point in pareto["points"]:
        assert point["metrics"]["macs"]["value"] <= macs_max
        assert point["metrics"]["latency@host"]["source"] == "measured"
        assert 60 <= point["metrics"]["accuracy"]["value"] <= 100
