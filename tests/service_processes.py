"""Real service processes for tests: `hwnas serve` under uvicorn and `hwnas worker`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

# A host profile that measures quickly (tests check plumbing, not latency figures).
FAST_HOST = {
    "threads": 1,
    "batch_size": 1,
    "warmup_runs": 2,
    "timed_runs": 5,
    "max_attempts": 1,
    "passes": 2,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(data_dir: Path, database_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HWNAS_")}
    env["HWNAS_DATA_DIR"] = str(data_dir)
    if database_url:
        env["HWNAS_DATABASE_URL"] = database_url
    env.update({f"HWNAS_{k.upper()}": v for k, v in extra.items()})
    env["OMP_NUM_THREADS"] = "1"
    return env


def hwnas(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", *args],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )


class Server:
    """`hwnas serve` on a free port; `client` talks to it over real HTTP."""

    def __init__(self, env: dict[str, str], log_path: Path, worker: bool = True) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.data_dir = Path(env["HWNAS_DATA_DIR"])
        # the database it serves, for tests that read what a request stored
        self.database_url = env.get("HWNAS_DATABASE_URL") or f"sqlite:///{self.data_dir}/hwnas.db"
        args = ["serve", "--port", str(self.port)] + ([] if worker else ["--no-worker"])
        self.process = hwnas(args, env, log_path)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=120)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{log_path.read_text()[-3000:]}")
            try:
                if self.client.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"server not healthy:\n{log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def wait_for(predicate: object, timeout_s: float, what: str, interval_s: float = 0.5) -> object:
    """Poll `predicate()` until truthy; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()  # type: ignore[operator]
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
