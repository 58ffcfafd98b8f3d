"""Issue 21.1: a client-given checkpoint is a name inside HWNAS_CHECKPOINT_DIR, never the
database or anything else on the server, and a bad file is a 422 that stores nothing.

Real processes: `hwnas serve --no-worker` (uvicorn, SQLite in WAL mode) and `hwnas worker`
processes started and stopped (SIGTERM) around the requests. Before the fix, registering
`$HWNAS_DATA_DIR/hwnas.db` as a checkpoint made the server open the database file through a
second handle (dropping its POSIX locks), and the next worker to stop deleted the write-ahead log
under the server: every later job answered 202 but no other process ever saw it.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from service_processes import Server, hwnas, service_env, wait_for

JOB = {
    "supernet": "digits",
    "objectives": ["accuracy:max", "macs:min"],
    "budget": 2,
    "tactic": "random",
    "batch_size": 2,
}


@pytest.fixture
def data_dir(tmp_path: Path, random_checkpoint: str) -> Path:
    """A data directory whose default checkpoint directory holds the test checkpoint."""
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    shutil.copy(random_checkpoint, checkpoints / "digits.pt")
    return tmp_path


@pytest.fixture
def server(data_dir: Path) -> Iterator[Server]:
    env = service_env(data_dir, poll_interval_s="0.2", heartbeat_interval_s="0.5")
    server = Server(env, data_dir / "server.log", worker=False)
    yield server
    server.stop()


def _jobs_seen_by_another_process(db: Path) -> list[int]:
    """Job ids as a separate process reads them with the sqlite3 module (what a worker sees)."""
    code = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "print(','.join(str(r[0]) for r in c.execute('select id from jobs order by id')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(db)], capture_output=True, text=True, check=True
    )
    return [int(x) for x in out.stdout.strip().split(",") if x]


def _log_has(path: Path, text: str) -> bool:
    return path.is_file() and text in path.read_text()


def test_database_as_checkpoint_is_refused_and_no_write_is_lost(
    server: Server, data_dir: Path
) -> None:
    client, db = server.client, data_dir / "hwnas.db"
    checkpoints = str((data_dir / "checkpoints").resolve())
    # An absolute path inside the checkpoint directory is accepted like its name.
    inside = str(data_dir / "checkpoints" / "digits.pt")
    registered = client.post(
        "/v1/supernets", json={"name": "digits", "family": "mbv3-digits", "checkpoint": inside}
    )
    assert registered.status_code == 201, registered.text
    assert registered.json()["checkpoint_uri"] == str(Path(checkpoints) / "digits.pt")

    submitted = client.post("/v1/jobs", json=JOB)
    assert submitted.status_code == 202, submitted.text
    first_job = submitted.json()["id"]
    env = service_env(data_dir, poll_interval_s="0.2", heartbeat_interval_s="0.5")
    worker_log = data_dir / "worker-1.log"
    worker = hwnas(["worker"], env, worker_log)
    try:
        wait_for(lambda: _log_has(worker_log, "claimed job"), 120, "the first worker to claim")

        # The repro of issue 21.1, and the other ways of naming the database file.
        for given in (str(db), "../hwnas.db", "../hwnas.db-wal", "../hwnas.db-shm", "../../"):
            body = {"name": "evil", "family": "mbv3-digits", "checkpoint": given}
            refused = client.post("/v1/supernets", json=body)
            assert refused.status_code == 422, (given, refused.text)
            assert refused.json()["error"] == "invalid_checkpoint"
            assert checkpoints in refused.json()["detail"], refused.json()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=120) == 0, worker_log.read_text()[-3000:]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert not any("hwnas.db-wal (deleted)" in str(p) for p in _open_files(server.process.pid))

    later = client.post("/v1/jobs", json={**JOB, "seed": 1})
    assert later.status_code == 202, later.text
    later_job = later.json()["id"]
    assert _jobs_seen_by_another_process(db) == [first_job, later_job]

    second_log = data_dir / "worker-2.log"
    second = hwnas(["worker"], env, second_log)
    try:
        wait_for(
            lambda: _log_has(second_log, f"claimed job {later_job}"),
            180,
            "a restarted worker to claim the job submitted after the refused requests",
        )
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=120)
    listed = [job["id"] for job in client.get("/v1/jobs").json()]
    assert sorted(listed) == [first_job, later_job]
    assert [row["name"] for row in client.get("/v1/supernets").json()] == ["digits"]


def _open_files(pid: int) -> list[str]:
    fd_dir = Path(f"/proc/{pid}/fd")
    names = []
    for fd in fd_dir.iterdir():
        try:
            names.append(os.readlink(fd))
        except OSError:
            continue
    return names


def test_links_and_odd_names_are_refused_without_opening_them(
    server: Server, data_dir: Path
) -> None:
    checkpoints = data_dir / "checkpoints"
    db = data_dir / "hwnas.db"
    os.link(db, checkpoints / "hardlink.pt")  # the database under an innocent name
    (checkpoints / "symlink.pt").symlink_to(db)
    (checkpoints / "subdir").mkdir()
    os.mkfifo(checkpoints / "fifo.pt")  # opening a FIFO would block the request forever
    cases = {
        "hardlink.pt": "database",
        "symlink.pt": "outside",
        "subdir": "not a regular file",
        "fifo.pt": "not a regular file",
        "missing.pt": "not a file",
        "x" * 100_000: "at most 1024 characters",
        "/etc/passwd": "outside",
        "../../../etc/passwd": "outside",
        "": "at least 1 character",
    }
    for given, reason in cases.items():
        body = {"name": "x", "family": "mbv3-digits", "checkpoint": given}
        refused = server.client.post("/v1/supernets", json=body)
        assert refused.status_code == 422, (given[:40], refused.text)
        error = refused.json()
        assert error["error"] in ("invalid_checkpoint", "invalid_request"), error
        assert reason in error["detail"], (given[:40], error)
        assert len(refused.content) < 4000
    assert server.client.get("/v1/supernets").json() == []
    with sqlite3.connect(db) as connection:  # the hard link did not corrupt anything
        assert connection.execute("pragma integrity_check").fetchone() == ("ok",)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not a torch file at all", "not a torch checkpoint"),
        ("pickle", "not a torch checkpoint"),
        ("raw-pickle", "not a torch checkpoint"),
        ("object-in-state-dict", "not a torch checkpoint"),
        ("bad-keys", "keys do not match"),
        ("bad-shapes", "tensor shapes do not match"),
    ],
)
def test_a_bad_checkpoint_file_is_a_422_saying_what_is_wrong(
    server: Server, data_dir: Path, random_checkpoint: str, content: bytes | str, reason: str
) -> None:
    path = data_dir / "checkpoints" / "bad.pt"
    state = torch.load(random_checkpoint, weights_only=True)
    if content == "pickle":  # a full pickle: weights_only=True refuses to run its code
        torch.save({"model": object.__new__(_Evil)}, path)
    elif content == "raw-pickle":  # pickle.dump, not torch.save: no torch zip around it
        path.write_bytes(pickle.dumps({"weight": object.__new__(_Evil)}))
    elif content == "object-in-state-dict":  # a torch zip whose state dict holds an object
        torch.save({**state, "extra": object.__new__(_Evil)}, path)
    elif content == "bad-keys":
        torch.save({**state, "extra.weight": torch.zeros(1)}, path)
    elif content == "bad-shapes":
        key = next(k for k, v in state.items() if v.ndim > 1)
        torch.save({**state, key: torch.zeros(*[n + 1 for n in state[key].shape])}, path)
    else:
        assert isinstance(content, bytes)
        path.write_bytes(content)
    body = {"name": "bad", "family": "mbv3-digits", "checkpoint": "bad.pt"}
    refused = server.client.post("/v1/supernets", json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"] == "invalid_checkpoint"
    assert reason in refused.json()["detail"], refused.json()
    assert server.client.get("/v1/supernets").json() == []


class _Evil:
    """An object whose unpickling would run code: weights_only loading must refuse it."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch /tmp/hwnas-pwned",))


def test_default_checkpoint_and_size_limit(data_dir: Path) -> None:
    env = service_env(data_dir, max_checkpoint_bytes="1000")
    server = Server(env, data_dir / "server.log", worker=False)
    try:
        body = {"name": "default", "family": "mbv3-digits"}  # the family's shipped weights
        created = server.client.post("/v1/supernets", json=body)
        assert created.status_code == 201, created.text
        big = {"name": "big", "family": "mbv3-digits", "checkpoint": "digits.pt"}
        refused = server.client.post("/v1/supernets", json=big)
        assert refused.status_code == 422 and "HWNAS_MAX_CHECKPOINT_BYTES" in refused.text
    finally:
        server.stop()
