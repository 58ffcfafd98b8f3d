"""Latency tables of devices: upload, list, show, calibrate. Never commits."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Literal

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from latency_tables import (
    CalibratedLatencyEstimator,
    ImportedTable,
    LatencyEntry,
    LatencyTable,
    LatencyTableError,
    read_ofa_yaml,
    read_table_csv,
    read_table_json,
)
from latency_tables.importers import restrict_to_keys
from service.catalog.supernets import loaded_supernet, supernet_model
from service.db.models import Device, DeviceLatencyTable, LatencyTableEntry, Supernet
from service.errors import DomainError, InvalidInputError, NotFoundError
from service.supernets.registry import family_names

TableFormat = Literal["json", "csv", "ofa-yaml"]
TABLE_FORMATS: tuple[str, ...] = ("json", "csv", "ofa-yaml")
_CONTENT_TYPES: dict[str, TableFormat] = {
    "application/json": "json",
    "text/csv": "csv",
    "application/csv": "csv",
    "application/yaml": "ofa-yaml",
    "application/x-yaml": "ofa-yaml",
    "text/yaml": "ofa-yaml",
    "text/x-yaml": "ofa-yaml",
}


class UnknownLatencyTableError(NotFoundError):
    code = "unknown_latency_table"


class InvalidLatencyTableError(InvalidInputError):
    code = "invalid_latency_table"


class LatencyTableTooLargeError(DomainError):
    status_code = 413
    code = "latency_table_too_large"


def table_format(requested: str | None, content_type: str | None) -> TableFormat:
    """The upload's format: `?format=` wins, else the Content-Type; 422 naming both otherwise."""
    if requested is not None:
        if requested not in TABLE_FORMATS:
            raise InvalidLatencyTableError(
                f"unknown table format {requested!r}; use one of {list(TABLE_FORMATS)}"
            )
        return requested  # type: ignore[return-value]
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type in _CONTENT_TYPES:
        return _CONTENT_TYPES[media_type]
    raise InvalidLatencyTableError(
        f"cannot tell the table format from Content-Type {media_type or '(none)'!r}; pass "
        f"?format= one of {list(TABLE_FORMATS)} or a Content-Type of {sorted(_CONTENT_TYPES)}"
    )


def family_layer_keys(session: Session, family: str) -> list[str] | None:
    """Every op key a network of `family` runs, when the family can list them (else None)."""
    families = family_names()
    if family not in families:
        raise InvalidLatencyTableError(
            f"unknown supernet family {family!r}; installed families: {families}"
        )
    row = session.scalar(select(Supernet).where(Supernet.family == family).limit(1))
    model: Any = supernet_model(row) if row else loaded_supernet(family, None)
    keys = getattr(model, "all_layer_keys", None)
    return list(keys()) if callable(keys) else None


def import_table(
    data: bytes,
    fmt: TableFormat,
    device: Device,
    family: str | None,
    known_keys: Collection[str] | None,
    source_name: str,
) -> tuple[ImportedTable, str]:
    """Parse an upload for `device`; returns the table (restricted to the space's keys when they
    are known) and the fingerprint of the table as uploaded. 422 naming line/key on bad input."""
    descriptor = {"runtime": "unknown", **device.descriptor}
    try:
        if fmt == "json":
            uploaded = read_table_json(data, source_name)
            if family is not None and family != uploaded.family:
                raise LatencyTableError(
                    f"{source_name}: the table is for family {uploaded.family!r}, "
                    f"not {family!r} as the request says"
                )
        elif family is None:
            raise LatencyTableError(
                f"{fmt} tables do not say which supernet family their keys belong to; "
                "pass ?family=, e.g. ?family=mbv3-digits"
            )
        elif fmt == "csv":
            uploaded = read_table_csv(
                data, device=device.name, descriptor=descriptor, family=family, source=source_name
            )
        else:
            imported = read_ofa_yaml(
                data,
                device=device.name,
                descriptor=descriptor,
                family=family,
                known_keys=known_keys,
                source=source_name,
            )
            return imported, imported.table.fingerprint()
        fingerprint = uploaded.fingerprint()
        uploaded = uploaded.model_copy(update={"device": device.name})
        if known_keys is None:
            return ImportedTable(uploaded), fingerprint
        return restrict_to_keys(uploaded, known_keys), fingerprint
    except LatencyTableError as error:
        raise InvalidLatencyTableError(str(error)) from error


def store_table(
    session: Session,
    device: Device,
    imported: ImportedTable,
    fmt: TableFormat,
    source_name: str | None,
    fingerprint: str,
) -> DeviceLatencyTable:
    table = imported.table
    row = DeviceLatencyTable(
        device_id=device.id,
        family=table.family,
        format=fmt,
        source_name=source_name,
        descriptor=table.descriptor.model_dump(mode="json", exclude_none=True),
        measurement=table.measurement.model_dump(mode="json", exclude_none=True),
        unmapped_keys=list(imported.unmapped_keys),
        renamed_keys=dict(imported.renamed_keys),
        entries_count=len(table.entries),
        fingerprint=fingerprint,
        calibration=None,
    )
    session.add(row)
    session.flush()
    session.execute(
        insert(LatencyTableEntry),
        [
            {"table_id": row.id, "op_key": key, **entry.model_dump()}
            for key, entry in table.entries.items()
        ],
    )
    return row


def list_tables(session: Session, device_id: int) -> list[DeviceLatencyTable]:
    return list(
        session.scalars(
            select(DeviceLatencyTable)
            .where(DeviceLatencyTable.device_id == device_id)
            .order_by(DeviceLatencyTable.id)
        )
    )


def get_table(session: Session, device_id: int, table_id: int) -> DeviceLatencyTable:
    row = session.get(DeviceLatencyTable, table_id)
    if row is None or row.device_id != device_id:
        raise UnknownLatencyTableError(
            f"device {device_id} has no latency table {table_id}; "
            f"see GET /v1/devices/{device_id}/latency-tables"
        )
    return row


def latest_table(session: Session, device_id: int, family: str) -> DeviceLatencyTable | None:
    """The newest table of the device for the family: the one jobs estimate latency with."""
    return session.scalar(
        select(DeviceLatencyTable)
        .where(DeviceLatencyTable.device_id == device_id, DeviceLatencyTable.family == family)
        .order_by(DeviceLatencyTable.id.desc())
        .limit(1)
    )


def has_table(session: Session, device_id: int) -> bool:
    count = session.scalar(
        select(func.count())
        .select_from(DeviceLatencyTable)
        .where(DeviceLatencyTable.device_id == device_id)
    )
    return bool(count)


def load_table(session: Session, device: Device, row: DeviceLatencyTable) -> LatencyTable:
    entries = {
        e.op_key: LatencyEntry(
            mean_ms=e.mean_ms,
            std_ms=e.std_ms,
            count=e.count,
            median_ms=e.median_ms,
            p90_ms=e.p90_ms,
            cv=e.cv,
        )
        for e in session.scalars(
            select(LatencyTableEntry).where(LatencyTableEntry.table_id == row.id)
        )
    }
    return LatencyTable(
        device=device.name,
        descriptor=row.descriptor,  # type: ignore[arg-type]
        family=row.family,
        measurement=row.measurement,  # type: ignore[arg-type]
        entries=entries,
    )


def set_calibration(
    session: Session, device: Device, row: DeviceLatencyTable, calibration: Mapping[str, Any]
) -> DeviceLatencyTable:
    """Attach a calibration fitted on this table (as uploaded); 422 when it does not fit."""
    if calibration.get("lut_fingerprint") != row.fingerprint:
        raise InvalidLatencyTableError(
            f"the calibration was fitted on another table (lut_fingerprint "
            f"{str(calibration.get('lut_fingerprint'))[:12]}…, this table {row.fingerprint[:12]}…)"
        )
    try:
        calibrated_estimator(load_table(session, device, row), calibration)
    except LatencyTableError as error:
        raise InvalidLatencyTableError(str(error)) from error
    row.calibration = dict(calibration)
    session.flush()
    return row


def calibrated_estimator(
    table: LatencyTable, calibration: Mapping[str, Any]
) -> CalibratedLatencyEstimator:
    # The row's fingerprint was checked on upload; the stored table carries the device's name.
    return CalibratedLatencyEstimator.from_json(
        {**calibration, "lut_fingerprint": table.fingerprint()}, table
    )
