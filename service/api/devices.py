"""`/v1/devices`: register and list the devices latency is measured on."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlalchemy.orm import Session

from service.api.auth import requires
from service.api.deps import SessionDep
from service.api.error_responses import errors
from service.api.schemas.catalog import DeviceIn, DeviceOut
from service.catalog import devices as device_catalog
from service.db.models import Device
from service.latency import sources as latency_sources

router = APIRouter(prefix="/v1/devices", tags=["devices"], dependencies=[requires(write="admin")])


def _out(session: Session, row: Device) -> DeviceOut:
    return DeviceOut(
        id=row.id,
        name=row.name,
        kind=row.kind,
        descriptor=row.descriptor,
        can_measure_latency=latency_sources.can_measure_latency(session, row),
        created_at=row.created_at,
    )


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=DeviceOut, responses=errors(409, 413)
)
def create_device(body: DeviceIn, session: SessionDep, response: Response) -> DeviceOut:
    row = device_catalog.create_device(session, body.name, body.kind, body.descriptor)
    session.refresh(row)
    response.headers["Location"] = f"/v1/devices/{row.id}"
    return _out(session, row)


@router.get("", response_model=list[DeviceOut])
def list_devices(session: SessionDep) -> list[DeviceOut]:
    return [_out(session, row) for row in device_catalog.list_devices(session)]
