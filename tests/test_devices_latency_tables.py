"""Latency tables over real HTTP (uvicorn, SQLite): an OFA yaml table uploaded for a lut-only
device is imported and estimates a search's latency (plain sum, or calibrated); bad files,
unknown devices and oversized uploads get a clear 4xx and store nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from service_processes import Server, service_env, wait_for
from sqlalchemy import func, select

from latency_tables import CalibratedLatencyEstimator, read_ofa_yaml
from service.catalog.supernets import loaded_supernet
from service.db.engine import make_engine
from service.db.models import DeviceLatencyTable, EvaluationCacheEntry, LatencyTableEntry
from service.supernets.protocol import Supernet

MAX_BYTES = 64 * 1024
FOREIGN_KEY = "expanded_conv-input:112x112x24-output:56x56x32-expand:144-kernel:5-stride:2-idskip:0"
YAML = {"Content-Type": "application/yaml"}


@pytest.fixture(scope="module")
def supernet(random_checkpoint: str) -> Supernet:
    return loaded_supernet("mbv3-digits", random_checkpoint)


@pytest.fixture(scope="module")
def ofa_table(supernet: Supernet) -> dict[str, dict[str, float]]:
    """An OFA-format table: every op key of the space plus one of another space."""
    keys = [*supernet.all_layer_keys(), FOREIGN_KEY]  # type: ignore[attr-defined]
    rng = np.random.default_rng(0)
    return {
        key: {"count": 20, "mean": round(float(rng.uniform(0.01, 0.5)), 4), "std": 0.01}
        for key in keys
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, random_checkpoint: str) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("luts")
    env = service_env(
        data_dir,
        max_latency_table_bytes=str(MAX_BYTES),
        poll_interval_s="0.3",
        checkpoint_dir=str(Path(random_checkpoint).parent),
    )
    server = Server(env, data_dir / "server.log")
    try:
        checkpoint = Path(random_checkpoint).name  # a name inside the checkpoint directory
        body = {"name": "digits", "family": "mbv3-digits", "checkpoint": checkpoint}
        assert server.client.post("/v1/supernets", json=body).status_code == 201
        for name in ("npu", "dsp"):
            device = {"name": name, "kind": "lut-only", "descriptor": {"hardware": name}}
            assert server.client.post("/v1/devices", json=device).status_code == 201
        yield server
    finally:
        server.stop()


def table_rows(server: Server) -> tuple[int, int]:
    engine = make_engine(server.database_url)
    with engine.connect() as connection:
        tables = connection.execute(select(func.count()).select_from(DeviceLatencyTable))
        entries = connection.execute(select(func.count()).select_from(LatencyTableEntry))
        counts = (tables.scalar_one(), entries.scalar_one())
    engine.dispose()
    return counts


def _device(server: Server, name: str) -> dict[str, Any]:
    return next(d for d in server.client.get("/v1/devices").json() if d["name"] == name)


def test_ofa_yaml_upload_imports_and_lut_job_uses_it(
    server: Server, supernet: Supernet, ofa_table: dict[str, dict[str, float]]
) -> None:
    client = server.client
    npu, dsp = _device(server, "npu"), _device(server, "dsp")
    assert not npu["can_measure_latency"]
    text = yaml.safe_dump(ofa_table)
    uploaded = {}
    for device in (npu, dsp):
        response = client.post(
            f"/v1/devices/{device['id']}/latency-tables?family=mbv3-digits&name=note10.yaml",
            content=text,
            headers=YAML,
        )
        assert response.status_code == 201, response.text
        uploaded[device["name"]] = response.json()
    shown = uploaded["npu"]
    assert shown["entries_count"] == len(ofa_table) - 1
    assert shown["unmapped_keys"] == [FOREIGN_KEY]
    assert shown["format"] == "ofa-yaml" and shown["source_name"] == "note10.yaml"
    assert not shown["calibrated"]
    assert shown["family_ops"] == len(ofa_table) - 1 and shown["coverage"] == 1.0
    assert _device(server, "npu")["can_measure_latency"]

    listed = client.get(f"/v1/devices/{npu['id']}/latency-tables").json()
    assert [t["id"] for t in listed] == [shown["id"]]
    assert listed[0]["coverage"] == 1.0
    detail = client.get(f"/v1/devices/{npu['id']}/latency-tables/{shown['id']}").json()
    some_key = next(iter(detail["entries"]))
    assert detail["entries"][some_key]["mean_ms"] == ofa_table[some_key]["mean"]
    assert detail["entries"][some_key]["count"] == 20

    # Calibrate dsp's table: latency = 1.25 × sum + 0.1 ms, fitted on 12 networks.
    descriptor = {"runtime": "unknown", "hardware": "dsp"}
    local = read_ofa_yaml(
        text,
        device="dsp",
        descriptor=descriptor,
        family="mbv3-digits",
        known_keys=set(supernet.all_layer_keys()),  # type: ignore[attr-defined]
    ).table
    assert local.fingerprint() == uploaded["dsp"]["fingerprint"]
    configs = supernet.space.sample(np.random.default_rng(1), 12)
    keys = [supernet.layer_keys(c) for c in configs]
    sums = [sum(local.entries[k].mean_ms for k in ks) for ks in keys]
    calibration = (
        CalibratedLatencyEstimator(local, models=("affine",))
        .fit(keys, [1.25 * s + 0.1 for s in sums])
        .to_json()
    )
    url = f"/v1/devices/{dsp['id']}/latency-tables/{uploaded['dsp']['id']}/calibration"
    wrong = client.put(url, json={**calibration, "lut_fingerprint": "0" * 64})
    assert (wrong.status_code, wrong.json()["error"]) == (422, "invalid_latency_table")
    calibrated = client.put(url, json=calibration)
    assert calibrated.status_code == 200, calibrated.text
    assert calibrated.json()["calibrated"] and calibrated.json()["calibration_model"] == "affine"

    request = {
        "supernet": "digits",
        "objectives": ["accuracy:max", "latency@npu:min"],
        "constraints": ["latency@dsp<=1000"],
        "budget": 4,
        "tactic": "random",
        "batch_size": 2,
    }
    submitted = client.post("/v1/jobs", json=request)
    assert submitted.status_code == 202, submitted.text
    assert submitted.json()["spec"]["latency_sources"] == {"npu": "lut", "dsp": "lut"}
    location = submitted.headers["Location"]

    def finished() -> dict[str, Any] | None:
        job = client.get(location).json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    job = wait_for(finished, 400, "the job to finish", interval_s=1)
    assert isinstance(job, dict) and job["status"] == "succeeded", job
    candidates = client.get(f"{location}/candidates").json()["items"]
    assert len(candidates) == 4
    for candidate in candidates:
        ops = supernet.layer_keys(candidate["config"])
        raw_sum = sum(ofa_table[k]["mean"] for k in ops)
        npu_latency = candidate["metrics"]["latency@npu"]
        assert npu_latency["value"] == pytest.approx(raw_sum, rel=1e-9)
        assert (npu_latency["source"], npu_latency["method"]) == ("predicted", "lut")
        dsp_latency = candidate["metrics"]["latency@dsp"]
        assert dsp_latency["value"] == pytest.approx(1.25 * raw_sum + 0.1, rel=1e-6)
        assert (dsp_latency["source"], dsp_latency["method"]) == ("predicted", "lut")
        assert candidate["metrics"]["accuracy"]["source"] == "measured"
    pareto = client.get(f"{location}/pareto").json()
    assert {p["metrics"]["latency@npu"]["method"] for p in pareto["points"]} == {"lut"}

    engine = make_engine(server.database_url)
    with engine.connect() as connection:
        cached = connection.execute(
            select(EvaluationCacheEntry.metric).where(
                EvaluationCacheEntry.metric.in_(["latency@npu", "latency@dsp"])
            )
        ).all()
    engine.dispose()
    assert cached == []  # estimates never enter the cache of validations


def _csv(*lines: str) -> str:
    return "\n".join(lines) + "\n"


BAD_UPLOADS = [
    # (name, device id, query, content type, body, status, error, text in detail)
    ("yaml syntax", 1, "?family=mbv3-digits", "application/yaml", "a: [1, 2\nb: 3\n", 422,
     "invalid_latency_table", "line"),
    ("yaml without mean", 1, "?family=mbv3-digits", "application/yaml",
     "Conv-input:32x32x1-output:16x16x16: {count: 3, std: 0.1}\n", 422,
     "invalid_latency_table", "missing 'mean'"),
    ("yaml of another space", 1, "?family=mbv3-digits", "application/yaml",
     f"{FOREIGN_KEY}-se:0-hs:0: {{count: 3, mean: 1.0, std: 0.1}}\n", 422,
     "invalid_latency_table", "none of its"),
    ("csv bad number", 1, "?family=mbv3-digits", "text/csv",
     _csv("key,mean_ms", "Conv-input:32x32x1-output:16x16x16,0.1", "Logits-input:x-output:y,fast"),
     422, "invalid_latency_table", "line 3"),
    ("csv negative", 1, "?family=mbv3-digits", "text/csv",
     _csv("key,mean_ms", "Conv-input:32x32x1-output:16x16x16,-0.1"),
     422, "invalid_latency_table", "non-negative"),
    ("csv without family", 1, "", "text/csv",
     _csv("key,mean_ms", "Conv-input:32x32x1-output:16x16x16,0.1"),
     422, "invalid_latency_table", "?family="),
    ("json syntax", 1, "", "application/json", '{"device": "npu",\n  "entries": }', 422,
     "invalid_latency_table", "line 2"),
    ("json missing fields", 1, "", "application/json", '{"device": "npu"}', 422,
     "invalid_latency_table", "descriptor"),
    ("unknown family", 1, "?family=resnet9000", "application/yaml",
     "Conv-input:1x1x1-output:1x1x1: {count: 1, mean: 1, std: 0}\n", 422,
     "invalid_latency_table", "unknown supernet family"),
    ("unknown content type", 1, "", "text/plain", "x", 422, "invalid_latency_table",
     "?format="),
    ("empty body", 1, "?family=mbv3-digits", "application/yaml", "", 422,
     "invalid_latency_table", "empty"),
    ("too large", 1, "?family=mbv3-digits", "application/yaml",
     "# padding\n" * (MAX_BYTES // 10 + 1), 413, "latency_table_too_large", "limited"),
    ("unknown device", 999, "?family=mbv3-digits", "application/yaml",
     "Conv-input:32x32x1-output:16x16x16: {count: 3, mean: 1.0, std: 0.1}\n", 404,
     "unknown_device", "GET /v1/devices"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("device_id", "query", "content_type", "body", "status", "error", "detail"),
    [case[1:] for case in BAD_UPLOADS],
    ids=[case[0] for case in BAD_UPLOADS],
)
def test_bad_uploads_are_refused_and_store_nothing(
    server: Server,
    device_id: int,
    query: str,
    content_type: str,
    body: str,
    status: int,
    error: str,
    detail: str,
) -> None:
    before = table_rows(server)
    response = server.client.post(
        f"/v1/devices/{device_id}/latency-tables{query}",
        content=body,
        headers={"Content-Type": content_type},
    )
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert detail in response.json()["detail"]
    assert table_rows(server) == before


def test_unknown_tables_and_lut_sources_are_refused(server: Server) -> None:
    client = server.client
    assert client.get("/v1/devices/999/latency-tables").status_code == 404
    missing = client.get("/v1/devices/1/latency-tables/999")
    assert (missing.status_code, missing.json()["error"]) == (404, "unknown_latency_table")
    job = {"supernet": "digits", "objectives": ["accuracy:max", "latency@npu:min"], "budget": 2}
    for sources, text in (
        ({"npu": "measured"}, "lut-only"),
        ({"dsp": "lut"}, "no objective or constraint uses"),
        ({"npu": "guess"}, "latency_sources.npu"),
    ):
        refused = client.post("/v1/jobs", json={**job, "latency_sources": sources})
        assert refused.status_code == 422, refused.text
        assert text in refused.json()["detail"]


def test_coverage_counts_the_family_ops_a_partial_table_holds(
    server: Server, ofa_table: dict[str, dict[str, float]]
) -> None:
    family_keys = [key for key in ofa_table if key != FOREIGN_KEY]
    partial = {key: ofa_table[key] for key in family_keys[::4]}
    dsp = _device(server, "dsp")
    response = server.client.post(
        f"/v1/devices/{dsp['id']}/latency-tables?family=mbv3-digits&name=quarter.yaml",
        content=yaml.safe_dump(partial),
        headers=YAML,
    )
    assert response.status_code == 201, response.text
    stored = response.json()
    assert stored["family_ops"] == len(family_keys)
    assert stored["coverage"] == pytest.approx(len(partial) / len(family_keys))
    listed = server.client.get(f"/v1/devices/{dsp['id']}/latency-tables").json()
    assert next(t for t in listed if t["id"] == stored["id"])["coverage"] == stored["coverage"]
