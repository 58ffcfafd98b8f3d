"""The device agent: runs on a target device, measures sub-networks the service asks for.

Loop: claim tasks for this device (a lease), download each task's ONNX model, time it with
onnxruntime under the device's profile (threads, batch size, warm-up, timed runs), post the
statistics. A task whose agent dies is re-leased by the service when the lease runs out, so
killing an agent loses nothing; a result the service already has is answered 409 and skipped.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import socket
import threading
from collections.abc import Mapping
from typing import Any

import httpx
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from service.evaluation.latency import measure_onnx_latency
from service.evaluation.profile import DeviceProfile

log = logging.getLogger("hwnas.agent")

PROFILE_KEYS = tuple(
    f.name for f in dataclasses.fields(DeviceProfile) if f.init and f.name != "name"
)


class AgentSetupError(RuntimeError):
    """The agent cannot work: bad token, unknown device, not an agent device."""


def default_agent_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# What onnxruntime raises for a model this device cannot load or run (no common base class).
ONNXRUNTIME_ERRORS: tuple[type[Exception], ...] = tuple(
    getattr(ort_state, name)
    for name in (
        "Fail",
        "InvalidArgument",
        "InvalidGraph",
        "InvalidProtobuf",
        "NoModel",
        "NotImplemented",
        "RuntimeException",
        "EPFail",
    )
    if hasattr(ort_state, name)
)


def profile_for(device: str, descriptor: Mapping[str, Any], batch_size: int) -> DeviceProfile:
    """The onnxruntime profile of the device descriptor, at the task's batch size."""
    fields = {k: v for k, v in descriptor.items() if k in PROFILE_KEYS}
    fields["batch_size"] = batch_size
    return DeviceProfile(name=device, **fields)


class DeviceAgent:
    """Claims and measures the tasks of one agent device on one server."""

    def __init__(
        self,
        server: str,
        device: str,
        token: str,
        agent_id: str | None = None,
        claim_limit: int = 1,
        poll_s: float = 2.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.device, self.agent_id = device, agent_id or default_agent_id()
        self.claim_limit, self.poll_s = claim_limit, poll_s
        self.client = client or httpx.Client(base_url=server.rstrip("/"), timeout=300)
        self.client.headers["Authorization"] = f"Bearer {token}"
        self.device_id: int | None = None

    def resolve_device(self) -> int:
        """The id of the device named `self.device`; refuses anything but an agent device."""
        response = self.client.get("/v1/agent/device")
        if response.status_code in (401, 403, 404):
            raise AgentSetupError(f"device {self.device!r}: {_detail(response)}")
        response.raise_for_status()
        found = response.json()
        if found["name"] != self.device:
            raise AgentSetupError(
                f"this token is the agent token of device {found['name']!r}, not of {self.device!r}"
            )
        if found["kind"] != "agent":
            raise AgentSetupError(
                f"device {self.device!r} is a {found['kind']} device, not an agent device"
            )
        self.device_id = int(found["id"])
        return self.device_id

    def claim(self) -> dict[str, Any]:
        if self.device_id is None:
            self.resolve_device()
        response = self.client.post(
            f"/v1/devices/{self.device_id}/tasks/claim",
            json={"agent_id": self.agent_id, "limit": self.claim_limit},
        )
        if response.status_code == 401:
            raise AgentSetupError(f"the server refused the agent token: {_detail(response)}")
        response.raise_for_status()
        claimed: dict[str, Any] = response.json()
        return claimed

    def measure(self, task: Mapping[str, Any], descriptor: Mapping[str, Any]) -> dict[str, Any]:
        """Download the task's model and time it; the result body to post."""
        response = self.client.get(task["model_url"])
        response.raise_for_status()
        profile = profile_for(self.device, descriptor, int(task["batch_size"]))
        stats = measure_onnx_latency(response.content, tuple(task["input_shape"]), profile)
        runtime = {
            **profile.descriptor(),
            "hostname": socket.gethostname(),
            "machine": platform.machine(),
            "python": platform.python_version(),
        }
        return {"agent_id": self.agent_id, "stats": stats.to_json(), "runtime": runtime}

    def post_result(self, task_id: int, body: Mapping[str, Any]) -> bool:
        """Post a result; False (logged) when the service already had one for this task."""
        return self._post_once(task_id, "result", body)

    def post_failure(self, task_id: int, error: str) -> bool:
        """Tell the service this device cannot measure the task; False when it was not stored."""
        body = {"agent_id": self.agent_id, "error": error[:2000]}
        return self._post_once(task_id, "failure", body)

    def _post_once(self, task_id: int, what: str, body: Mapping[str, Any]) -> bool:
        """POST /v1/tasks/{id}/{what}; a 409 (already done, or no longer ours) is logged."""
        response = self.client.post(f"/v1/tasks/{task_id}/{what}", json=body)
        if response.status_code == 409:
            log.warning("task %s: %s not stored: %s", task_id, what, _detail(response))
            return False
        response.raise_for_status()
        return True

    def run_once(self) -> int:
        """Claim once and measure what was claimed; returns how many tasks were claimed.

        A network this device cannot run (onnxruntime refuses the model) is reported as failed
        with the reason, so the job waiting on it fails now instead of after every lease."""
        claimed = self.claim()
        for task in claimed["tasks"]:
            try:
                body = self.measure(task, claimed["profile"])
            except ONNXRUNTIME_ERRORS as error:
                log.error("task %s: cannot measure: %s", task["id"], error)
                self.post_failure(int(task["id"]), f"onnxruntime: {error}")
                continue
            if self.post_result(int(task["id"]), body):
                log.info(
                    "task %s (%s…, batch %s): median %.3f ms, cv %.3f",
                    task["id"],
                    task["config_hash"][:10],
                    task["batch_size"],
                    body["stats"]["median_ms"],
                    body["stats"]["cv"],
                )
        return len(claimed["tasks"])

    def run(self, stop: threading.Event) -> None:
        """Claim and measure until `stop`; transient server or network errors are retried."""
        log.info("agent %s serving device %r", self.agent_id, self.device)
        while not stop.is_set():
            try:
                claimed_any = self.run_once() > 0
            except AgentSetupError:
                raise
            except (httpx.HTTPError, OSError) as error:
                log.warning("server unreachable or refused a request (%s); retrying", error)
                claimed_any = False
            except Exception:  # a model that fails to run: its lease expires, others retry
                log.exception("measurement failed; the task will be re-leased")
                claimed_any = False
            if not claimed_any:
                stop.wait(self.poll_s)
        self.client.close()


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text
