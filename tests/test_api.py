"""The HTTP API in process (FastAPI's TestClient on SQLite, no worker): resources, and every bad
input → its 4xx, no writes. Real uvicorn and worker processes are tested end to end elsewhere."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import factories
import pytest
from fastapi.testclient import TestClient
from service_processes import FAST_HOST
from sqlalchemy import func, select

from service.app import create_app
from service.cli import main as hwnas_main
from service.config import Settings
from service.db.engine import Base, SchemaOutOfDateError, transaction, upgrade_database
from service.search.spec import DEFAULT_PREDICTORS

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations" / "versions"


@pytest.fixture(scope="module")
def api_settings(random_checkpoint: str) -> dict[str, Any]:
    return {"checkpoint_dir": Path(random_checkpoint).parent}


@pytest.fixture(scope="module")
def api(api_client: TestClient, random_checkpoint: str) -> TestClient:
    name = Path(random_checkpoint).name  # client-given checkpoints are names in the directory
    supernet = {"name": "digits", "family": "mbv3-digits", "checkpoint": name}
    assert api_client.post("/v1/supernets", json=supernet).status_code == 201
    for device in (
        {"name": "host", "kind": "host", "descriptor": FAST_HOST},
        {"name": "phone", "kind": "agent", "descriptor": {"os": "android"}},
        {"name": "npu", "kind": "lut-only", "descriptor": {}},
    ):
        assert api_client.post("/v1/devices", json=device).status_code == 201
    return api_client


def row_counts(api: TestClient) -> dict[str, int]:
    with api.app.state.engine.connect() as connection:  # type: ignore[attr-defined]
        return {
            name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in Base.metadata.tables.items()
        }


def test_health_and_openapi(api: TestClient) -> None:
    health = api.get("/health").json()
    newest_migration = sorted(p.name for p in MIGRATIONS.glob("0*.py"))[-1].split("_")[0]
    assert health == {"status": "ok", "database": "sqlite", "schema_revision": newest_migration}
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/v1/jobs", "/v1/jobs/{job_id}/pareto", "/v1/supernets/{supernet_id}"} <= set(paths)


def test_supernet_show_includes_space_and_ranges(api: TestClient) -> None:
    [listed] = api.get("/v1/supernets").json()
    shown = api.get(f"/v1/supernets/{listed['id']}").json()
    assert shown["family"] == "mbv3-digits" and shown["dataset"]
    assert len(shown["search_space"]) == shown["n_genes"] > 0
    low, high = shown["exact_ranges"]["macs"]
    assert 0 < low < high
    assert len(shown["checkpoint_sha256"]) == 64


def test_devices_report_what_they_can_measure(api: TestClient) -> None:
    devices = {d["name"]: d for d in api.get("/v1/devices").json()}
    assert devices["host"]["can_measure_latency"] is True
    assert devices["host"]["descriptor"]["timed_runs"] == 5
    assert devices["phone"]["can_measure_latency"] is True  # through `hwnas agent`
    assert devices["npu"]["can_measure_latency"] is False  # until it has a latency table


def test_submit_job_returns_202_with_location(api: TestClient) -> None:
    body = {
        "supernet": "digits",
        "objectives": ["accuracy:max", "latency@host:min"],
        "constraints": ["macs<=3e6"],
        "budget": 10,
    }
    response = api.post("/v1/jobs", json=body)
    assert response.status_code == 202
    job = api.get(response.headers["Location"]).json()
    assert job["status"] == "queued" and job["budget"] == 10 and job["progress"] == 0
    assert job["spec"]["constraints"] == ["macs<=3e+06"]
    cancelled = api.post(f"{response.headers['Location']}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    again = api.post(f"{response.headers['Location']}/cancel")
    assert again.status_code == 409 and again.json()["error"] == "conflict"


def test_hypervolume_bounds_default_to_exact_ranges_and_can_be_given(api: TestClient) -> None:
    body = {
        "supernet": "digits",
        "objectives": ["accuracy:max", "macs:min"],
        "budget": 10,
        "hv_bounds": {"accuracy": [80, 100]},
    }
    response = api.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    [listed] = api.get("/v1/supernets").json()
    ranges = api.get(f"/v1/supernets/{listed['id']}").json()["exact_ranges"]
    spec = api.get(response.headers["Location"]).json()["spec"]
    assert spec["hv_bounds"] == {"accuracy": [80.0, 100.0], "macs": ranges["macs"]}
    api.post(f"{response.headers['Location']}/cancel")


def test_candidates_page_in_order_and_the_front_sorts_by_the_first_objective(
    api: TestClient,
) -> None:
    [supernet] = api.get("/v1/supernets").json()
    spec = {"objectives": ["accuracy:max", "latency@host:min"], "constraints": [], "budget": 3}
    latencies = {"latency@phone": 2.5, "latency@npu": 0.5}
    with transaction(api.app.state.session_factory) as session:  # type: ignore[attr-defined]
        job = factories.job(session, supernet["id"], budget=3, spec=spec)
        ids = [
            factories.candidate(
                session,
                job.id,
                {"accuracy": accuracy, "latency@host": latency, **latencies},
                predicted=["latency@npu"],
                pareto_role=role,
            ).id
            for accuracy, latency, role in (
                (90.0, 1.0, "front"),
                (95.0, 2.0, "front"),
                (80.0, 3.0, None),
            )
        ]
    first = api.get(f"/v1/jobs/{job.id}/candidates", params={"limit": 2}).json()
    assert [c["id"] for c in first["items"]] == ids[:2] and first["next_after"] == ids[1]
    rest = api.get(f"/v1/jobs/{job.id}/candidates", params={"after": ids[1]}).json()
    assert [c["id"] for c in rest["items"]] == ids[2:] and rest["next_after"] is None
    pareto = api.get(f"/v1/jobs/{job.id}/pareto").json()
    assert [p["id"] for p in pareto["points"]] == [ids[1], ids[0]]  # accuracy first, max
    assert (pareto["feasible"], pareto["closest"]) == (True, [])
    metrics = pareto["points"][0]["metrics"]
    assert {name: (m["device"], m["source"], m["method"]) for name, m in metrics.items()} == {
        "accuracy": (None, "measured", None),
        "latency@host": ("host", "measured", "host"),
        "latency@phone": ("phone", "measured", "agent"),
        "latency@npu": ("npu", "predicted", "lut"),
    }


GOOD_JOB: dict[str, Any] = {"supernet": "digits", "objectives": ["accuracy:max"], "budget": 5}


def test_job_takes_linas_predictors_and_exact_features(api: TestClient) -> None:
    default = api.post("/v1/jobs", json={**GOOD_JOB, "budget": 10})
    chosen = api.post(
        "/v1/jobs",
        json={**GOOD_JOB, "budget": 10, "predictors": ["ridge", "gp"], "exact_features": False},
    )
    assert default.status_code == chosen.status_code == 202, chosen.text
    default_spec = api.get(default.headers["Location"]).json()["spec"]
    chosen_spec = api.get(chosen.headers["Location"]).json()["spec"]
    assert default_spec["predictors"] == list(DEFAULT_PREDICTORS)
    assert default_spec["exact_features"] is True
    assert chosen_spec["predictors"] == ["ridge", "gp"]
    assert chosen_spec["exact_features"] is False
    for response in (default, chosen):
        api.post(f"{response.headers['Location']}/cancel")


BAD_REQUESTS = [
    (
        "unknown supernet",
        "POST",
        "/v1/jobs",
        {**GOOD_JOB, "supernet": "nope"},
        422,
        "unknown_supernet",
        "POST /v1/supernets",
    ),
    (
        "unknown metric",
        "POST",
        "/v1/jobs",
        {**GOOD_JOB, "objectives": ["energy:min"]},
        422,
        "unknown_metric",
        "known metrics",
    ),
    (
        "device-free metric with device",
        "POST",
        "/v1/jobs",
        {**GOOD_JOB, "objectives": ["accuracy@host:max"]},
        422,
        "unknown_metric",
        "'accuracy'",
    ),
    (
        "latency without device",
        "POST",
        "/v1/jobs",
        {**GOOD_JOB, "objectives": ["latency:min"]},
        422,
        "unknown_metric",
        "latency@host",
    ),
    (
        "unknown device",
        "POST",
        "/v1/jobs",
        {**GOOD_JOB, "constraints": ["latency@tpu<=3"]},
        422,
        "unknown_device",
        "POST /v1/devices",
    ),
    (
        "agent device without a table cannot use lut",
        "POST",
        "/v1/jobs",
        {
            **GOOD_JOB,
            "objectives": ["accuracy:max", "latency@phone:min"],
            "latency_sources": {"phone": "lut"},
        },
        422,
        "invalid_latency_source",
        "no latency table",
    ),
    (
        "lut-only cannot measure",
        "POST",
        "/v1/jobs",
        {**GOOD_JOB, "constraints": ["latency@npu<=2"]},
        422,
        "device_cannot_measure",
        "lut-only",
    ),
    (
        "objective does not parse",
        "POST",
        "/v1/jobs",
        {**GOOD_JOB, "objectives": ["accuracy"]},
        422,
        "invalid_objective",
        "accuracy:max",
    ),
    (
        "constraint does not parse",
        "POST",
        "/v1/jobs",
        {**GOOD_JOB, "constraints": ["macs<5"]},
        422,
        "invalid_constraint",
        "<=",
    ),
    (
        "constraint bound not a number",
        "POST",
        "/v1/jobs",
        {**GOOD_JOB, "constraints": ["macs<=lots"]},
        422,
        "invalid_constraint",
        "not a number",
    ),
    (
        "budget zero",
        "POST",
        "/v1/jobs",
        {**GOOD_JOB, "budget": 0},
        422,
        "budget_out_of_range",
        "1..10000",
    ),
    (
        "budget too large",
        "POST",
        "/v1/jobs",
        {**GOOD_JOB, "budget": 10**6},
        422,
        "budget_out_of_range",
        "1..10000",
    ),
    (
        "budget not an integer",
        "POST",
        "/v1/jobs",
        {**GOOD_JOB, "budget": "many"},
        422,
        "invalid_request",
        "budget",
    ),
    (
        "same objective twice",
        "POST",
        "/v1/jobs",
        {**GOOD_JOB, "objectives": ["accuracy:max", "accuracy:min"]},
        422,
        "invalid_spec",
        "one objective only",
    ),
    (
        "unknown field",
        "POST",
        "/v1/jobs",
        {**GOOD_JOB, "budgett": 5},
        422,
        "invalid_request",
        "budgett",
    ),
    (
        "unknown family",
        "POST",
        "/v1/supernets",
        {"name": "x", "family": "resnet-imaginary"},
        422,
        "unknown_family",
        "installed families",
    ),
    (
        "missing checkpoint file",
        "POST",
        "/v1/supernets",
        {"name": "x", "family": "mbv3-digits", "checkpoint": "nonexistent.pt"},
        422,
        "invalid_checkpoint",
        "not a file",
    ),
    (
        "checkpoint outside the checkpoint directory",
        "POST",
        "/v1/supernets",
        {"name": "x", "family": "mbv3-digits", "checkpoint": "/nonexistent.pt"},
        422,
        "invalid_checkpoint",
        "HWNAS_CHECKPOINT_DIR",
    ),
    (
        "duplicate supernet",
        "POST",
        "/v1/supernets",
        {"name": "digits", "family": "mbv3-digits"},
        409,
        "conflict",
        "another name",
    ),
    (
        "duplicate device",
        "POST",
        "/v1/devices",
        {"name": "host", "kind": "host"},
        409,
        "conflict",
        "another name",
    ),
    (
        "unknown device kind",
        "POST",
        "/v1/devices",
        {"name": "x", "kind": "gpu"},
        422,
        "invalid_request",
        "kind",
    ),
    (
        "bad host descriptor",
        "POST",
        "/v1/devices",
        {"name": "x", "kind": "host", "descriptor": {"cores": 4}},
        422,
        "invalid_input",
        "threads",
    ),
    (
        "non-boolean speed probe",
        "POST",
        "/v1/devices",
        {"name": "x", "kind": "host", "descriptor": {"speed_probe": 1}},
        422,
        "invalid_input",
        "true or false",
    ),
    (
        "boolean pass count",
        "POST",
        "/v1/devices",
        {"name": "x", "kind": "host", "descriptor": {"passes": True}},
        422,
        "invalid_input",
        "positive number",
    ),
    (
        "hv_bounds for a metric that is not an objective",
        "POST",
        "/v1/jobs",
        {**GOOD_JOB, "hv_bounds": {"macs": [1, 2]}},
        422,
        "invalid_spec",
        "not objectives",
    ),
    (
        "hv_bounds low above high",
        "POST",
        "/v1/jobs",
        {**GOOD_JOB, "hv_bounds": {"accuracy": [100, 80]}},
        422,
        "invalid_spec",
        "low < high",
    ),
    (
        "unknown predictor",
        "POST",
        "/v1/jobs",
        {**GOOD_JOB, "predictors": ["ridge", "xgboost"]},
        422,
        "invalid_spec",
        "unknown candidate(s) ['xgboost']; choose from",
    ),
    (
        "no predictor",
        "POST",
        "/v1/jobs",
        {**GOOD_JOB, "predictors": []},
        422,
        "invalid_spec",
        "at least one candidate",
    ),
    ("unknown job", "GET", "/v1/jobs/999999", None, 404, "not_found", "GET /v1/jobs"),
    ("unknown job pareto", "GET", "/v1/jobs/999999/pareto", None, 404, "not_found", "999999"),
    ("cancel unknown job", "POST", "/v1/jobs/999999/cancel", None, 404, "not_found", "999999"),
    (
        "unknown supernet id",
        "GET",
        "/v1/supernets/999999",
        None,
        404,
        "unknown_supernet",
        "GET /v1/supernets",
    ),
    (
        "bad export format",
        "GET",
        "/v1/jobs/1/export?format=xml",
        None,
        422,
        "invalid_request",
        "format",
    ),
    (
        "bad page size",
        "GET",
        "/v1/jobs/1/candidates?limit=0",
        None,
        422,
        "invalid_request",
        "limit",
    ),
    ("unknown route", "GET", "/v1/nothing", None, 404, "not_found", "Not Found"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "hint"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_REQUESTS],
)
def test_bad_input_gets_its_4xx_and_changes_nothing(
    api: TestClient, method: str, path: str, body: Any, status: int, code: str, hint: str
) -> None:
    before = row_counts(api)
    response = api.request(method, path, json=body)
    assert response.status_code == status, response.text
    payload = response.json()
    assert set(payload) == {"error", "detail"}
    assert payload["error"] == code
    assert hint in payload["detail"]
    assert row_counts(api) == before


def test_service_refuses_an_out_of_date_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/hwnas.db"
    upgrade_database(url, "base")
    settings = Settings(data_dir=tmp_path, database_url=url, embedded_worker=False)
    with (
        pytest.raises(SchemaOutOfDateError, match="hwnas db upgrade"),
        TestClient(create_app(settings)),
    ):
        pass
    monkeypatch.setenv("HWNAS_DATABASE_URL", url)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        with pytest.raises(SchemaOutOfDateError, match="hwnas db upgrade"):
            hwnas_main(["worker"])
    finally:  # `hwnas worker` configures logging for its process; this is pytest's
        root.handlers[:], root.level = handlers, level
