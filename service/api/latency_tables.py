"""`/v1/devices/{id}/latency-tables`: upload (hwnas JSON, CSV, OFA yaml), list, show, calibrate."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from sqlalchemy.orm import Session

from service.api.auth import requires
from service.api.deps import DbId, SessionDep
from service.api.error_responses import errors
from service.api.schemas.latency import LatencyTableDetailOut, LatencyTableOut
from service.api.storable_text import RULE, first_unstorable
from service.catalog import devices as device_catalog
from service.db.models import Device, DeviceLatencyTable
from service.latency import tables as latency_tables

router = APIRouter(
    prefix="/v1/devices/{device_id}/latency-tables",
    tags=["latency tables"],
    dependencies=[requires(write="admin")],
)

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The table file as the raw body (curl --data-binary @file)",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/csv": {"schema": {"type": "string"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


async def _upload_body(request: Request) -> bytes:
    """The request body, refused with 413 past the configured size before it is all read."""
    limit: int = request.app.state.settings.max_latency_table_bytes
    too_large = latency_tables.LatencyTableTooLargeError(
        f"latency table uploads are limited to {limit} bytes; split the table or raise "
        "HWNAS_MAX_LATENCY_TABLE_BYTES"
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        raise latency_tables.InvalidLatencyTableError("the request body is empty; send the table")
    return body


def _family_ops(session: Session, family: str) -> int | None:
    """How many ops `family` runs, when it is installed and can list them."""
    try:
        keys = latency_tables.family_layer_keys(session, family)
    except Exception:  # informational only: a supernet that no longer loads must not fail the list
        return None
    return len(keys) if keys else None


def _out(row: DeviceLatencyTable, device: Device, family_ops: int | None) -> LatencyTableOut:
    # Entries were restricted to the family's ops at import when it could list them.
    coverage = min(row.entries_count, family_ops) / family_ops if family_ops else None
    return LatencyTableOut(
        id=row.id,
        device_id=device.id,
        device=device.name,
        family=row.family,
        format=row.format,
        source_name=row.source_name,
        entries_count=row.entries_count,
        unmapped_keys=row.unmapped_keys,
        renamed_keys_count=len(row.renamed_keys),
        descriptor=row.descriptor,
        measurement=row.measurement,
        fingerprint=row.fingerprint,
        calibrated=row.calibration is not None,
        calibration_model=str(row.calibration.get("model")) if row.calibration else None,
        created_at=row.created_at,
        family_ops=family_ops,
        coverage=coverage,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=LatencyTableOut,
    responses=errors(404, 413),
    openapi_extra=_UPLOAD_BODY,
)
def upload_table(
    device_id: DbId,
    request: Request,
    session: SessionDep,
    response: Response,
    body: Annotated[bytes, Depends(_upload_body)],
    format: Annotated[
        str | None,
        Query(max_length=20, description="json, csv or ofa-yaml; default: from Content-Type"),
    ] = None,
    family: Annotated[
        str | None,
        Query(max_length=200, description="Supernet family of the keys (required for csv/yaml)"),
    ] = None,
    name: Annotated[str | None, Query(max_length=300, description="File name")] = None,
) -> LatencyTableOut:
    """Import a LUT measured on this device; keys no op of the family runs are reported, not
    imported. 422 names the line or key to fix and stores nothing; 413 past the size limit."""
    device = device_catalog.get_device(session, device_id)
    fmt = latency_tables.table_format(format, request.headers.get("content-type"))
    source_name = name or f"upload.{fmt}"
    family_of_keys = family
    if fmt == "json" and family_of_keys is None:
        family_of_keys = _json_family(body)
    known = latency_tables.family_layer_keys(session, family_of_keys) if family_of_keys else None
    imported, fingerprint = latency_tables.import_table(
        body, fmt, device, family, known, source_name
    )
    stored = {"name": name, "table": imported.table.model_dump(mode="json")}
    where = first_unstorable({**stored, "unmapped": list(imported.unmapped_keys)}, "table")
    if where is not None:
        raise latency_tables.InvalidLatencyTableError(f"{where}: {RULE}")
    row = latency_tables.store_table(session, device, imported, fmt, name, fingerprint)
    session.refresh(row)
    response.headers["Location"] = f"/v1/devices/{device.id}/latency-tables/{row.id}"
    return _out(row, device, len(known) if known else None)


def _json_family(body: bytes) -> str | None:
    """The family a JSON table names, to check its keys (the importer reports parse errors)."""
    import json

    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return None
    family = parsed.get("family") if isinstance(parsed, dict) else None
    return family if isinstance(family, str) and family else None


@router.get("", response_model=list[LatencyTableOut], responses=errors(404))
def list_tables(device_id: DbId, session: SessionDep) -> list[LatencyTableOut]:
    device = device_catalog.get_device(session, device_id)
    rows = latency_tables.list_tables(session, device.id)
    family_ops = {family: _family_ops(session, family) for family in {row.family for row in rows}}
    return [_out(row, device, family_ops[row.family]) for row in rows]


@router.get("/{table_id}", response_model=LatencyTableDetailOut, responses=errors(404))
def show_table(device_id: DbId, table_id: DbId, session: SessionDep) -> LatencyTableDetailOut:
    device = device_catalog.get_device(session, device_id)
    row = latency_tables.get_table(session, device.id, table_id)
    table = latency_tables.load_table(session, device, row)
    return LatencyTableDetailOut(
        **_out(row, device, _family_ops(session, row.family)).model_dump(),
        entries={key: entry.model_dump() for key, entry in table.entries.items()},
    )


@router.put("/{table_id}/calibration", response_model=LatencyTableOut, responses=errors(404, 413))
def put_calibration(
    device_id: DbId, table_id: DbId, calibration: dict[str, Any], session: SessionDep
) -> LatencyTableOut:
    """Attach a calibration (`hwnas-latency-calibration/1` JSON) fitted on this table; jobs then
    use the calibrated estimate instead of the plain sum."""
    device = device_catalog.get_device(session, device_id)
    row = latency_tables.get_table(session, device.id, table_id)
    latency_tables.set_calibration(session, device, row, calibration)
    session.refresh(row)
    return _out(row, device, _family_ops(session, row.family))
