"""The read path in process: the front's ETag and 304, a new version after the worker stores a
batch, /health without the database and /ready with it, the streamed exports, and admission
control (503 + Retry-After once the running slots and the queue are full)."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from pathlib import Path

import factories
import httpx
import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient

from service.api import jobs
from service.api.overload import ConcurrencyLimit
from service.app import create_app
from service.config import Settings
from service.dashboard import STATIC_DIR
from service.db.engine import downgrade_database, transaction, upgrade_database
from service.db.models import Job, JobStatus
from service.errors import NotFoundError
from service.jobs.evaluations import Batch, CacheKey, store_batch
from service.jobs.fronts import FrontCache
from service.search.records import Evaluation, FrontResult, IterationRecord

WORKER = "test-worker"
SPEC = {"objectives": ["accuracy:max", "macs:min"], "constraints": [], "budget": 100}


def running_job_with_front(api: TestClient) -> tuple[int, int]:
    """A running job held by `WORKER` with two candidates, one on the front; (job, supernet)."""
    with transaction(api.app.state.session_factory) as session:  # type: ignore[attr-defined]
        supernet = factories.supernet(session)
        job = factories.job(session, supernet.id, spec=SPEC)
        row = session.get(Job, job.id)
        assert row is not None
        row.status, row.worker_id = JobStatus.RUNNING, WORKER
        factories.candidate(session, job.id, {"accuracy": 90.0, "macs": 2e6}, pareto_role="front")
        factories.candidate(session, job.id, {"accuracy": 80.0, "macs": 3e6})
        return job.id, supernet.id


def store_one(api: TestClient, job_id: int, supernet_id: int, accuracy: float) -> str:
    """The worker's own write: one batch of one validation that becomes the whole front."""
    evaluation = Evaluation(
        {"n": accuracy},
        f"{int(accuracy * 1000):064x}",
        {"accuracy": accuracy, "macs": 1e6},
        1,
        "linas",
    )
    batch = Batch(
        [evaluation],
        {evaluation.config_hash},
        IterationRecord(1, 0.5, 1, 3),
        FrontResult([evaluation], True, []),
        3,
    )
    with transaction(api.app.state.session_factory) as session:  # type: ignore[attr-defined]
        store_batch(session, job_id, WORKER, CacheKey(supernet_id, "d"), {}, batch)
    return evaluation.config_hash


@pytest.fixture(scope="module")
def api_settings() -> dict[str, float]:
    """Fronts kept for a minute: what is served from memory does not depend on timing."""
    return {"front_max_age_s": 60.0}


def test_front_has_an_etag_answers_304_until_a_batch_is_stored(api_client: TestClient) -> None:
    job_id, supernet_id = running_job_with_front(api_client)
    first = api_client.get(f"/v1/jobs/{job_id}/pareto")
    assert first.status_code == 200 and first.headers["content-type"] == "application/json"
    etag = first.headers["etag"]
    assert [p["metrics"]["accuracy"]["value"] for p in first.json()["points"]] == [90.0]
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = api_client.get(f"/v1/jobs/{job_id}/pareto", headers={"If-None-Match": sent})
        assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    stale = api_client.get(f"/v1/jobs/{job_id}/pareto", headers={"If-None-Match": '"other"'})
    assert stale.status_code == 200 and stale.content == first.content

    new_hash = store_one(api_client, job_id, supernet_id, 95.0)
    # Within HWNAS_FRONT_MAX_AGE_S the kept front is served without the database ...
    kept = api_client.get(f"/v1/jobs/{job_id}/pareto", headers={"If-None-Match": etag})
    assert kept.status_code == 304
    # ... and `Cache-Control: no-cache` asks for the database's current one.
    moved = api_client.get(
        f"/v1/jobs/{job_id}/pareto", headers={"If-None-Match": etag, "Cache-Control": "no-cache"}
    )
    assert moved.status_code == 200 and moved.headers["etag"] != etag
    assert [p["config_hash"] for p in moved.json()["points"]] == [new_hash]

    cancelled = api_client.post(f"/v1/jobs/{job_id}/cancel")
    assert cancelled.status_code == 202
    after_cancel = api_client.get(
        f"/v1/jobs/{job_id}/pareto",
        headers={"If-None-Match": moved.headers["etag"], "Cache-Control": "no-cache"},
    )
    assert after_cancel.status_code == 304  # cancel_requested is not part of the front


def test_reading_the_job_marks_an_older_kept_front_for_comparison(
    api_client: TestClient,
) -> None:
    """A client that polls the job until it sees a new count or status, then reads the front,
    gets the front of what it saw, not the kept one."""
    job_id, supernet_id = running_job_with_front(api_client)
    first = api_client.get(f"/v1/jobs/{job_id}/pareto")
    new_hash = store_one(api_client, job_id, supernet_id, 97.0)
    assert api_client.get(f"/v1/jobs/{job_id}/pareto").content == first.content  # kept
    job = api_client.get(f"/v1/jobs/{job_id}")
    assert job.json()["validations_used"] == 3
    after = api_client.get(f"/v1/jobs/{job_id}/pareto")
    assert after.headers["etag"] != first.headers["etag"]
    assert [p["config_hash"] for p in after.json()["points"]] == [new_hash]


def test_unknown_job_front_is_a_json_404(api_client: TestClient) -> None:
    response = api_client.get("/v1/jobs/987654/pareto")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_exports_stream_every_candidate(api_client: TestClient) -> None:
    job_id, supernet_id = running_job_with_front(api_client)
    store_one(api_client, job_id, supernet_id, 97.0)
    rows = list(
        csv.DictReader(io.StringIO(api_client.get(f"/v1/jobs/{job_id}/export?format=csv").text))
    )
    assert [float(r["accuracy"]) for r in rows] == [90.0, 80.0, 97.0]
    assert {r["accuracy_source"] for r in rows} == {"measured"}
    exported = api_client.get(f"/v1/jobs/{job_id}/export").json()
    assert exported["job"]["id"] == job_id
    assert [c["metrics"]["accuracy"]["value"] for c in exported["candidates"]] == [90.0, 80.0, 97.0]
    missing = api_client.get("/v1/jobs/987654/export?format=csv")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_health_does_no_database_work_and_ready_checks_the_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hwnas.db"
    upgrade_database(url)
    settings = Settings(data_dir=tmp_path, database_url=url, embedded_worker=False)
    with TestClient(create_app(settings)) as client:
        health, ready = client.get("/health").json(), client.get("/ready").json()
        assert health == ready and health["database"] == "sqlite"
        downgrade_database(url, "0002")  # a real fault: the schema moves under the running app
        assert client.get("/health").status_code == 200  # liveness: the process is fine
        not_ready = client.get("/ready")
        assert not_ready.status_code == 503 and not_ready.headers["retry-after"] == "5"
        assert not_ready.json()["error"] == "not_ready"
        assert (
            "0002" in not_ready.json()["detail"]
            and "hwnas db upgrade" in not_ready.json()["detail"]
        )


def test_past_the_running_slots_and_the_queue_the_answer_is_503_with_retry_after() -> None:
    async def scenario() -> list[httpx.Response]:
        release = asyncio.Event()

        async def slow_app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
            await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"done"})

        limited = ConcurrencyLimit(slow_app, max_running=1, max_queued=1, queue_timeout_s=30)
        transport = httpx.ASGITransport(app=limited)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            running = asyncio.create_task(client.get("/v1/jobs/1/pareto"))
            queued = asyncio.create_task(client.get("/v1/jobs/1/pareto"))
            await asyncio.sleep(0.05)
            refused = await client.get("/v1/jobs/1/pareto")
            health = asyncio.create_task(client.get("/health"))  # never queued
            release.set()
            return [refused, await running, await queued, await health]

    refused, *served = asyncio.run(scenario())
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"] == "overloaded" and "retry after" in refused.json()["detail"]
    assert [r.status_code for r in served] == [200, 200, 200]


def test_a_request_that_waits_past_the_queue_timeout_gets_503() -> None:
    async def scenario() -> httpx.Response:
        forever = asyncio.Event()

        async def stuck_app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
            await forever.wait()

        limited = ConcurrencyLimit(stuck_app, max_running=1, max_queued=5, queue_timeout_s=0.2)
        transport = httpx.ASGITransport(app=limited)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            holder = asyncio.create_task(client.get("/a"))
            await asyncio.sleep(0.05)
            waited = await client.get("/b")
            holder.cancel()
            return waited

    waited = asyncio.run(scenario())
    assert waited.status_code == 503 and "0.2 s" in waited.json()["detail"]


def test_serve_refuses_several_workers_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from service.cli import main as hwnas_main

    monkeypatch.setenv("HWNAS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HWNAS_DATABASE_URL", raising=False)
    assert hwnas_main(["serve", "--workers", "2"]) == 2
    assert "needs PostgreSQL" in caplog.text and "HWNAS_DATABASE_URL" in caplog.text


def test_a_stale_front_is_compared_by_one_request_while_the_others_get_the_kept_one(
    api_client: TestClient,
) -> None:
    job_id, _ = running_job_with_front(api_client)
    cache = FrontCache(max_age_s=0.05)
    factory = api_client.app.state.session_factory  # type: ignore[attr-defined]
    assert cache.from_memory(job_id) is None  # nothing kept yet
    with factory() as session:
        front = cache.current(session, job_id)
    assert cache.from_memory(job_id) is front
    time.sleep(0.06)
    assert cache.from_memory(job_id) is None  # this request compares with the database ...
    assert cache.from_memory(job_id) is front  # ... the ones meanwhile get the kept front
    with factory() as session:
        assert cache.current(session, job_id).etag == front.etag
    assert cache.from_memory(job_id) is front
    with factory() as session, pytest.raises(NotFoundError):
        cache.current(session, 987654)
    assert FrontCache(max_age_s=0).from_memory(job_id) is None  # 0: always the database


def test_a_poll_of_a_kept_front_is_answered_before_routing_as_the_route_answers(
    api_client: TestClient,
) -> None:
    """`api/front_from_memory.py`: the same status, headers and body as the route, without it
    (a dependency override that would refuse every routed request shows which path answered);
    what it is not sure of (no-cache, a body, HEAD) still goes to the route."""
    job_id, _ = running_job_with_front(api_client)
    url = f"/v1/jobs/{job_id}/pareto"
    routed = api_client.get(url, headers={"Cache-Control": "no-cache"})
    etag = routed.headers["etag"]
    routed_304 = api_client.get(url, headers={"Cache-Control": "no-cache", "If-None-Match": etag})
    app = api_client.app
    app.dependency_overrides[jobs.ACCESS] = _refuse_every_routed_request  # type: ignore[attr-defined]
    try:
        kept = api_client.get(url)
        kept_304 = api_client.get(url, headers={"If-None-Match": f'"x", W/{etag}'})
        still_routed = [
            api_client.get(url, headers={"Cache-Control": "no-cache"}),
            api_client.request("GET", url, content=b"{}"),
            api_client.head(url),
            api_client.get(f"{url}/", follow_redirects=False),  # the router redirects it
        ]
    finally:
        app.dependency_overrides.clear()  # type: ignore[attr-defined]
    assert (kept.status_code, kept.content) == (200, routed.content)
    assert kept.headers.items() == routed.headers.items()
    assert (kept_304.status_code, kept_304.content) == (304, b"")
    assert kept_304.headers.items() == routed_304.headers.items()
    assert [r.status_code for r in still_routed] == [418, 418, 405, 307]


def _refuse_every_routed_request() -> None:
    raise HTTPException(status_code=418, detail="this request went through the router")


def test_dashboard_files_are_served_from_memory_with_an_etag(api_client: TestClient) -> None:
    shipped = (STATIC_DIR / "app.js").read_bytes()
    first = api_client.get("/dashboard/static/app.js")
    assert first.status_code == 200 and first.content == shipped
    assert first.headers["content-type"].startswith("text/javascript")
    etag = first.headers["etag"]
    again = api_client.get("/dashboard/static/app.js", headers={"If-None-Match": f"W/{etag}"})
    assert (again.status_code, again.content) == (304, b"")
    other = api_client.get("/dashboard/static/job.js", headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.headers["etag"] != etag
    head = api_client.head("/dashboard/static/app.js")
    assert head.headers["content-length"] == str(len(shipped)) and head.content == b""
    assert api_client.get("/dashboard/static/vendor/README.md").status_code == 200
    for missing in ("nothing.js", "../app.py", "vendor"):
        assert api_client.get(f"/dashboard/static/{missing}").status_code == 404, missing
    refused = api_client.post("/dashboard/static/app.js")
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
