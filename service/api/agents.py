"""Device agents: find their device, claim measurement tasks, download a task's ONNX model,
post its result.

Every endpoint here wants `Authorization: Bearer <token>` with an agent token of the device the
task belongs to: one of `HWNAS_AGENT_TOKENS=device=token,…` or an API token of scope
`agent:DEVICE` (`hwnas tokens create`); no token is 401, any other token 403 (`service.api.auth`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from service.api.auth import AGENT_ONLY, AgentDevice
from service.api.deps import DbId, SessionDep
from service.api.error_responses import errors
from service.api.schemas.latency import (
    AgentDeviceOut,
    ClaimIn,
    ClaimOut,
    FailureIn,
    ResultIn,
    ResultOut,
    TaskOut,
)
from service.catalog import devices as device_catalog
from service.catalog import supernets as supernet_catalog
from service.catalog.artifacts import subnet_onnx_file
from service.db.models import Device, MeasurementTask
from service.errors import ConflictError, ForbiddenError
from service.latency import tasks

router = APIRouter(prefix="/v1", tags=["agents"], dependencies=[AGENT_ONLY])


class NotAnAgentDeviceError(ConflictError):
    code = "not_an_agent_device"


def _check_scope(token_device: str, device: Device) -> None:
    if token_device != device.name:
        raise ForbiddenError(
            f"this agent token is for device {token_device!r}, not for device {device.name!r}"
        )


def _task_of_device(session: SessionDep, task_id: int, token_device: str) -> MeasurementTask:
    task = tasks.get_task(session, task_id)
    _check_scope(token_device, device_catalog.get_device(session, task.device_id))
    return task


@router.get("/agent/device", response_model=AgentDeviceOut, responses=errors(401, 403, 404))
def agent_own_device(session: SessionDep, agent: AgentDevice) -> AgentDeviceOut:
    """The device this agent token acts for, so an agent needs no read token to find its id."""
    device = device_catalog.find_device(session, agent)
    if device is None:
        raise device_catalog.UnknownDeviceError(
            f"the server has no device named {agent!r}; register it with "
            'POST /v1/devices {"name": …, "kind": "agent", "descriptor": {…}}'
        )
    return AgentDeviceOut(id=device.id, name=device.name, kind=device.kind)


@router.post(
    "/devices/{device_id}/tasks/claim",
    response_model=ClaimOut,
    responses=errors(401, 403, 404, 409, 413),
)
def claim_tasks(
    device_id: DbId, body: ClaimIn, session: SessionDep, request: Request, agent: AgentDevice
) -> ClaimOut:
    """Lease up to `limit` tasks of this agent device; an empty list when none is waiting."""
    device = device_catalog.get_device(session, device_id)
    if device.kind != "agent":
        raise NotAnAgentDeviceError(
            f"device {device.name!r} is a {device.kind} device; only agent devices have tasks"
        )
    _check_scope(agent, device)
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
        tasks=[TaskOut.model_validate(t) for t in leased],
    )


@router.get(
    "/tasks/{task_id}/model.onnx",
    responses={200: {"content": {"application/octet-stream": {}}}, **errors(401, 403, 404)},
)
def task_onnx(task_id: DbId, session: SessionDep, request: Request, agent: AgentDevice) -> Response:
    """The task's sub-network with supernet weights as ONNX at the task's batch size (cached)."""
    task = _task_of_device(session, task_id, agent)
    supernet_row = supernet_catalog.get_supernet(session, task.supernet_id)
    path = subnet_onnx_file(
        request.app.state.settings.artifact_dir,
        supernet_row,
        task.config,
        task.config_hash,
        task.batch_size,
    )
    return Response(path.read_bytes(), media_type="application/octet-stream")


@router.post(
    "/tasks/{task_id}/result", response_model=ResultOut, responses=errors(401, 403, 404, 409, 413)
)
def post_result(
    task_id: DbId, body: ResultIn, session: SessionDep, agent: AgentDevice
) -> ResultOut:
    """Store the lease holder's measured statistics once: 409 for a second result or an agent
    not holding the lease, 403 for another device's token, 422 for implausible figures."""
    _task_of_device(session, task_id, agent)
    task = tasks.store_result(session, task_id, body.agent_id, body.stats, body.runtime)
    return ResultOut(task_id=task.id, status=task.status, agent_id=task.agent_id, stats=task.stats)


@router.post(
    "/tasks/{task_id}/failure", response_model=ResultOut, responses=errors(401, 403, 404, 409, 413)
)
def post_failure(
    task_id: DbId, body: FailureIn, session: SessionDep, agent: AgentDevice
) -> ResultOut:
    """The lease holder cannot measure this network: the task fails now with the agent's reason
    (the job waiting on it fails with it) instead of being re-leased until attempts run out."""
    _task_of_device(session, task_id, agent)
    task = tasks.store_failure(session, task_id, body.agent_id, body.error)
    return ResultOut(task_id=task.id, status=task.status, agent_id=task.agent_id, stats=None)
