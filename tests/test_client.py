"""`service.client` against a real `hwnas serve` (uvicorn, embedded worker, SQLite)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import onnxruntime as ort
import pytest
from service_processes import FAST_HOST, Server, free_port, service_env, wait_for

from service.client import Client, HwnasError
from service.jobs.views import CandidateOut, JobOut, ParetoOut

LUT = Path(__file__).resolve().parents[1] / "latency_tables" / "data" / "mbv3-digits__host.lut.json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("client")
    server = Server(service_env(data_dir, heartbeat_interval_s="0.5"), data_dir / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[Client]:
    with Client(f"http://127.0.0.1:{server.port}") as client:
        client.register_supernet("mbv3-digits", "mbv3-digits")
        client.register_device("host", "host", FAST_HOST)
        yield client


def macs_limit(client: Client) -> float:
    low, high = client.supernet("mbv3-digits").exact_ranges["macs"]
    return low + 0.5 * (high - low)


def test_catalog_typed_and_errors(client: Client) -> None:
    supernet = client.supernet("mbv3-digits")
    assert supernet.n_genes > 0 and supernet.exact_ranges["macs"][0] > 0
    assert [s.name for s in client.supernets()] == ["mbv3-digits"]
    with pytest.raises(HwnasError) as conflict:
        client.register_supernet("mbv3-digits", "mbv3-digits")
    assert (conflict.value.error, conflict.value.status_code) == ("conflict", 409)
    with pytest.raises(HwnasError) as unknown:
        client.register_supernet("other", "no-such-family")
    assert unknown.value.error == "unknown_family" and "mbv3-digits" in unknown.value.detail
    assert client.device("host").can_measure_latency


def test_latency_table_upload(client: Client) -> None:
    npu = client.register_device("npu", "lut-only", {"hardware": "npu"})
    assert not npu.can_measure_latency
    table = client.upload_latency_table("npu", LUT)
    assert table.device == "npu" and table.family == "mbv3-digits" and table.entries_count > 0
    assert [t.id for t in client.latency_tables(npu.id)] == [table.id]
    assert client.device("npu").can_measure_latency
    with pytest.raises(HwnasError) as refused:
        client.upload_latency_table("npu", b"not a table", format="csv", family="mbv3-digits")
    assert refused.value.status_code == 422


def test_job_lifecycle(client: Client, tmp_path: Path) -> None:
    job = client.submit_job(
        "mbv3-digits",
        ["macs:min", "params:max"],
        [f"macs<={macs_limit(client):.0f}"],
        budget=30,
        tactic="random",
        batch_size=10,
    )
    assert isinstance(job.last, JobOut) and job.last.status in ("queued", "running")
    final = job.wait(progress=True, poll_s=0.5, timeout_s=300)
    assert final.status == "succeeded" and final.validations_used == 30
    assert [it.iteration for it in final.iterations] == [0, 1, 2]
    assert job.status().progress == 1.0

    pareto = job.pareto()
    assert isinstance(pareto, ParetoOut) and pareto.feasible and pareto.points
    assert all(isinstance(p, CandidateOut) for p in pareto.points)
    candidates = list(job.candidates(page_size=7))
    assert len(candidates) == 30
    csv_text = job.export("csv")
    assert csv_text.startswith("candidate_id,") and len(csv_text.splitlines()) == 31
    assert [c["id"] for c in job.export("json")["candidates"]] == [c.id for c in candidates]

    path = job.download_onnx(pareto.points[0], tmp_path / "front0.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == 1
    with pytest.raises(HwnasError) as finished:
        job.cancel()
    assert finished.value.error == "conflict"
    with pytest.raises(HwnasError) as missing:
        job.download_onnx(10**9)
    assert missing.value.error == "not_found"
    assert client.job(job.id).last.id == job.id
    assert job.id in [j.id for j in client.jobs()]


def test_cancel_a_running_job(client: Client) -> None:
    job = client.submit_job(
        "mbv3-digits", ["macs:min", "params:max"], budget=5000, tactic="random", batch_size=5
    )
    wait_for(lambda: job.status().validations_used > 0, 120, "the job to start")
    assert job.cancel().cancel_requested
    assert job.wait(timeout_s=120).status == "cancelled"


def test_submit_errors_carry_code_and_detail(client: Client) -> None:
    with pytest.raises(HwnasError) as error:
        client.submit_job("nope", ["macs:min"])
    assert error.value.error == "unknown_supernet" and error.value.status_code == 422
    with pytest.raises(HwnasError) as error:
        client.submit_job("mbv3-digits", ["macs:sideways"])
    assert error.value.error == "invalid_objective" and "metric" in error.value.detail


def test_unreachable_server_and_token() -> None:
    with Client(f"http://127.0.0.1:{free_port()}", token="t0ken", timeout_s=5) as offline:
        assert offline._http.headers["Authorization"] == "Bearer t0ken"
        with pytest.raises(HwnasError) as error:
            offline.jobs()
    assert error.value.error == "unreachable"


def test_a_server_at_capacity_is_asked_again_after_its_retry_after(tmp_path: Path) -> None:
    env = service_env(tmp_path, max_concurrent_requests="1", max_queued_requests="0")
    server = Server(env, tmp_path / "server.log", worker=False)
    url = f"http://127.0.0.1:{server.port}"
    try:
        # The one request slot, held by a request whose body has not all arrived.
        holder = socket.create_connection(("127.0.0.1", server.port))
        head = "POST /v1/devices HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        holder.sendall(f"{head}Content-Length: 1000\r\n\r\n{{".encode())

        def refused(client: Client) -> HwnasError | None:
            try:
                client.devices()
            except HwnasError as error:
                return error
            return None

        with Client(url, retries=0) as impatient:
            error = wait_for(lambda: refused(impatient), 30, "the slot to be held")
        assert isinstance(error, HwnasError)
        assert (error.status_code, error.error) == (503, "overloaded")
        with Client(url) as patient:
            statuses: list[int] = []
            patient._http.event_hooks["response"].append(lambda r: statuses.append(r.status_code))
            with pytest.raises(HwnasError):  # a POST is sent once
                patient.register_device("npu", "lut-only")
            assert statuses == [503]
            statuses.clear()
            threading.Timer(0.5, holder.close).start()  # frees the slot before the retry is due
            assert patient.devices() == []
            assert statuses == [503, 200]
    finally:
        server.stop()
