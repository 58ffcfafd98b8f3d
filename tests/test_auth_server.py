"""Tokens against a real `hwnas serve` (uvicorn) on SQLite and PostgreSQL: made, listed and
revoked with `hwnas tokens`, used by the Python client and the device agent, never in the log;
the open-mode line at start, and the refusal to serve a non-loopback address without auth."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from service_processes import Server, free_port, hwnas, service_env, wait_for

from service.agent.device_agent import DeviceAgent
from service.auth.gate import GRACE_S
from service.cli import main
from service.cli.serve import open_to_network
from service.client import Client, HwnasError
from service.config import Settings

ADMIN = "bootstrap-admin-token-0123456789"


def _tokens(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "tokens", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def tokens_cli(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """`hwnas tokens …` in this process (the command's own code, without a second interpreter
    start per call): its exit status, stdout and stderr."""
    for key, value in env.items():
        if key.startswith("HWNAS_"):
            monkeypatch.setenv(key, value)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        status = main(["tokens", *args])
        out, err = capsys.readouterr()
        return status, out, err

    return run


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return service_env(tmp_path, database_url, admin_token=ADMIN)


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> Iterator[Server]:
    server = Server(env, tmp_path / "server.log", worker=False)
    yield server
    server.stop()


def test_cli_tokens_work_on_a_real_server_and_never_reach_its_log(
    server: Server, env: dict[str, str], tokens_cli: Callable[..., tuple[int, str, str]]
) -> None:
    url = f"http://127.0.0.1:{server.port}"
    assert "authentication on" in server.log_path.read_text()
    anonymous = server.client.get("/v1/jobs")
    assert (anonymous.status_code, anonymous.headers["WWW-Authenticate"]) == (401, "Bearer")
    assert anonymous.json()["error"] == "unauthorized"

    made = _tokens(env, "create", "--scope", "read", "--name", "ci", "--expires", "1d")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("hwnas_") and "shown this once" in made.stderr
    agent_secret = tokens_cli("create", "--scope", "agent:edge")[1].strip()

    with Client(url, token=ADMIN) as admin:
        admin.register_device("edge", "agent", {})
    with Client(url, token=secret) as reader:
        assert [d.name for d in reader.devices()] == ["edge"]
        with pytest.raises(HwnasError) as refused:
            reader.register_device("edge-2", "agent", {})
        assert refused.value.status_code == 403 and "scope admin" in refused.value.detail
    agent = DeviceAgent(url, "edge", agent_secret, agent_id="probe")
    assert agent.resolve_device() == 1 and agent.claim()["tasks"] == []
    agent.client.close()

    listed = tokens_cli("list", "-f", "json")[1]
    rows = json.loads(listed)
    assert [(r["name"], r["scope"]) for r in rows] == [("ci", "read"), ("agent:edge", "agent:edge")]
    assert secret not in listed and rows[0]["prefix"] == secret[:12]
    assert rows[0]["last_used_at"] and rows[0]["expires_at"]
    assert tokens_cli("revoke", str(rows[0]["id"]))[0] == 0
    # Revoked by another process: the server holds it as usable for at most
    # HWNAS_AUTH_RECHECK_S (1 s) + the grace of one database read (docs/security.md).
    deadline = time.monotonic() + 1.0 + GRACE_S + 2.0
    while True:
        revoked = server.client.get("/v1/jobs", headers={"Authorization": f"Bearer {secret}"})
        if revoked.status_code != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]

    status, out, err = tokens_cli("create", "--scope", "root")
    assert status == 1 and "agent:DEVICE" in err and not out
    assert tokens_cli("revoke", "99") == (
        1,
        "",
        "error: not_found: no API token has id 99 (see `hwnas tokens list`)\n",
    )
    assert len(json.loads(tokens_cli("list", "-f", "json")[1])) == 2
    log = server.log_path.read_text()
    assert "GET /v1/jobs" in log  # the access log is on, and holds no header
    for token in (secret, agent_secret, ADMIN):
        assert token not in log


def test_open_mode_is_announced_and_only_served_on_loopback(tmp_path: Path) -> None:
    env = service_env(tmp_path)
    server = Server(env, tmp_path / "open.log", worker=False)
    try:
        assert "authentication OFF (open mode)" in server.log_path.read_text()
        assert server.client.get("/v1/jobs").status_code == 200
    finally:
        server.stop()

    port = free_port()
    refused = hwnas(["serve", "--host", "0.0.0.0", "--port", str(port)], env, tmp_path / "r.log")
    assert refused.wait(timeout=120) == 2
    said = (tmp_path / "r.log").read_text()
    assert "refusing to serve 0.0.0.0 without authentication" in said and "--insecure" in said

    args = ["serve", "--host", "0.0.0.0", "--port", str(port), "--no-worker", "--insecure"]
    insecure = hwnas(args, env, tmp_path / "insecure.log")
    try:
        wait_for(lambda: _healthy(port), 90, "the --insecure server")
        assert "--insecure" in (tmp_path / "insecure.log").read_text()
    finally:
        insecure.terminate()
        insecure.wait(timeout=30)

    settings = Settings(data_dir=tmp_path)
    assert (
        open_to_network(settings, "127.0.0.1") is None and open_to_network(settings, "::1") is None
    )
    assert open_to_network(settings, "0.0.0.0") is not None
    assert open_to_network(settings.model_copy(update={"admin_token": ADMIN}), "0.0.0.0") is None


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    except httpx.TransportError:
        return False
