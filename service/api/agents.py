"""Device agents: claim measurement tasks, download a task's ONNX model, post its result.

Every endpoint here wants `Authorization: Bearer <HWNAS_AGENT_TOKEN>`; without a configured token
the agent endpoints are closed (401).
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from service.api.deps import SessionDep
from service.api.schemas.latency import ClaimIn, ClaimOut, FailureIn, ResultIn, ResultOut, TaskOut
from service.catalog import devices as device_catalog
from service.catalog import supernets as supernet_catalog
from service.catalog.artifacts import subnet_onnx_file
from service.db.models import MeasurementTask
from service.errors import ConflictError, DomainError
from service.latency import tasks

router = APIRouter(prefix="/v1", tags=["agents"])


class AgentAuthError(DomainError):
    status_code = 401
    code = "unauthorized"


class NotAnAgentDeviceError(ConflictError):
    code = "not_an_agent_device"


def _check_agent_token(request: Request) -> None:
    expected: str | None = request.app.state.settings.agent_token
    if not expected:
        raise AgentAuthError(
            "agent endpoints are closed: the server has no HWNAS_AGENT_TOKEN configured"
        )
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip(), expected):
        raise AgentAuthError("send the agent token as 'Authorization: Bearer <token>'")


AgentAuth = Annotated[None, Depends(_check_agent_token)]


def _task_out(task: MeasurementTask) -> TaskOut:
    return TaskOut(
        id=task.id,
        config_hash=task.config_hash,
        config=task.config,
        input_shape=task.input_shape,
        batch_size=task.batch_size,
        attempts=task.attempts,
        lease_expires_at=task.lease_expires_at,
        model_url=f"/v1/tasks/{task.id}/model.onnx",
    )


@router.post("/devices/{device_id}/tasks/claim", response_model=ClaimOut)
def claim_tasks(
    device_id: int, body: ClaimIn, session: SessionDep, request: Request, _auth: AgentAuth
) -> ClaimOut:
    """Lease up to `limit` tasks of this agent device; an empty list when none is waiting."""
    device = device_catalog.get_device(session, device_id)
    if device.kind != "agent":
        raise NotAnAgentDeviceError(
            f"device {device.name!r} is a {device.kind} device; only agent devices have tasks"
        )
    settings = request.app.state.settings
    leased = tasks.claim(
        session,
        device.id,
        body.agent_id,
        body.limit,
        settings.agent_lease_s,
        settings.agent_task_max_attempts,
    )
    return ClaimOut(
        device_id=device.id,
        device=device.name,
        profile=device.descriptor,
        lease_s=settings.agent_lease_s,
        tasks=[_task_out(t) for t in leased],
    )


@router.get(
    "/tasks/{task_id}/model.onnx",
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def task_onnx(task_id: int, session: SessionDep, request: Request, _auth: AgentAuth) -> Response:
    """The task's sub-network with supernet weights as ONNX at the task's batch size (cached)."""
    task = tasks.get_task(session, task_id)
    supernet_row = supernet_catalog.get_supernet(session, task.supernet_id)
    path = subnet_onnx_file(
        request.app.state.settings.artifact_dir,
        supernet_row,
        task.config,
        task.config_hash,
        task.batch_size,
    )
    return Response(path.read_bytes(), media_type="application/octet-stream")


@router.post("/tasks/{task_id}/result", response_model=ResultOut)
def post_result(task_id: int, body: ResultIn, session: SessionDep, _auth: AgentAuth) -> ResultOut:
    """Store the measured statistics once: 409 for a second result, 422 for implausible ones."""
    task = tasks.store_result(session, task_id, body.agent_id, body.stats, body.runtime)
    return ResultOut(task_id=task.id, status=task.status, agent_id=task.agent_id, stats=task.stats)


@router.post("/tasks/{task_id}/failure", response_model=ResultOut)
def post_failure(task_id: int, body: FailureIn, session: SessionDep, _auth: AgentAuth) -> ResultOut:
    """The lease holder cannot measure this network: the task fails now with the agent's reason
    (the job waiting on it fails with it) instead of being re-leased until attempts run out."""
    task = tasks.store_failure(session, task_id, body.agent_id, body.error)
    return ResultOut(task_id=task.id, status=task.status, agent_id=task.agent_id, stats=None)
