"""Latency tables of devices (upload, list, show, calibrate) and where a job's latency comes from.

A device's latency is either `measured` (the service host itself, or a device agent) or read from
its latency lookup table (`lut`: the calibrated estimator when a calibration was uploaded, else the
plain sum of the ops' entries). Never commits.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from latency_tables import (
    CalibratedLatencyEstimator,
    ImportedTable,
    LatencyEntry,
    LatencyTable,
    LatencyTableError,
    estimate_latency,
    read_ofa_yaml,
    read_table_csv,
    read_table_json,
)
from latency_tables.importers import restrict_to_keys
from service.errors import DomainError, InvalidInputError, NotFoundError
from service.models import Device, DeviceLatencyTable, LatencyTableEntry, Supernet
from service.supernets.registry import family_names

TableFormat = Literal["json", "csv", "ofa-yaml"]
LatencySource = Literal["measured", "lut"]
TABLE_FORMATS: tuple[str, ...] = ("json", "csv", "ofa-yaml")
DEFAULT_LATENCY_SOURCE: dict[str, LatencySource] = {
    "host": "measured",
    "agent": "measured",
    "lut-only": "lut",
}
_CONTENT_TYPES: dict[str, TableFormat] = {
    "application/json": "json",
    "text/csv": "csv",
    "application/csv": "csv",
    "application/yaml": "ofa-yaml",
    "application/x-yaml": "ofa-yaml",
    "text/yaml": "ofa-yaml",
    "text/x-yaml": "ofa-yaml",
}


class UnknownDeviceError(NotFoundError):
    code = "unknown_device"


class UnknownLatencyTableError(NotFoundError):
    code = "unknown_latency_table"


class InvalidLatencyTableError(InvalidInputError):
    code = "invalid_latency_table"


class LatencyTableTooLargeError(DomainError):
    status_code = 413
    code = "latency_table_too_large"


class InvalidLatencySourceError(InvalidInputError):
    code = "invalid_latency_source"


def get_device(session: Session, device_id: int) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise UnknownDeviceError(f"device {device_id} does not exist; see GET /v1/devices")
    return device


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
    from service import catalog

    families = family_names()
    if family not in families:
        raise InvalidLatencyTableError(
            f"unknown supernet family {family!r}; installed families: {families}"
        )
    row = session.scalar(select(Supernet).where(Supernet.family == family).limit(1))
    model: Any = catalog.supernet_model(row) if row else catalog.loaded_supernet(family, None)
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
        _calibrated(load_table(session, device, row), calibration)
    except LatencyTableError as error:
        raise InvalidLatencyTableError(str(error)) from error
    row.calibration = dict(calibration)
    session.flush()
    return row


def _calibrated(table: LatencyTable, calibration: Mapping[str, Any]) -> CalibratedLatencyEstimator:
    # The row's fingerprint was checked on upload; the stored table carries the device's name.
    return CalibratedLatencyEstimator.from_json(
        {**calibration, "lut_fingerprint": table.fingerprint()}, table
    )


@dataclass(frozen=True)
class LutLatency:
    """Latency of a sub-network on a lut-only device, from its table (calibrated when possible)."""

    device_name: str
    table_id: int
    table: LatencyTable
    calibration: Mapping[str, Any] | None

    @property
    def method(self) -> str:
        return "lut-calibrated" if self.calibration else "lut-sum"

    def estimate_ms(self, layer_key_lists: Sequence[Sequence[str]]) -> list[float]:
        if self.calibration:
            estimator = _calibrated(self.table, self.calibration)
            return [float(v) for v in estimator.predict(layer_key_lists)]
        return [estimate_latency(self.table, keys) for keys in layer_key_lists]


def lut_latency(session: Session, device: Device, family: str) -> LutLatency:
    found = lut_latency_if_any(session, device, family)
    if found is None:
        raise InvalidLatencySourceError(_no_table(device, family))
    return found


def lut_latency_if_any(session: Session, device: Device, family: str) -> LutLatency | None:
    """The device's newest table for the family as an estimator, or None when it has none."""
    row = latest_table(session, device.id, family)
    if row is None:
        return None
    return LutLatency(device.name, row.id, load_table(session, device, row), row.calibration)


def _no_table(device: Device, family: str) -> str:
    return (
        f"device {device.name!r} has no latency table for family {family!r}; upload one with "
        f"POST /v1/devices/{device.id}/latency-tables"
    )


def resolve_latency_sources(
    session: Session,
    supernet: Supernet,
    devices: Sequence[Device],
    requested: Mapping[str, str],
) -> dict[str, LatencySource]:
    """Where each latency device of a job gets its figures: the request's choice, else the
    device kind's default; 422 when a choice names another device or cannot be served."""
    by_name = {d.name: d for d in devices}
    stray = sorted(set(requested) - set(by_name))
    if stray:
        raise InvalidLatencySourceError(
            f"latency_sources names device(s) {stray} that no objective or constraint uses; "
            f"latency devices of this job: {sorted(by_name)}"
        )
    resolved: dict[str, LatencySource] = {}
    for device in devices:
        source = requested.get(device.name, DEFAULT_LATENCY_SOURCE[device.kind])
        if source not in ("measured", "lut"):
            raise InvalidLatencySourceError(
                f"latency_sources[{device.name!r}] must be 'measured' or 'lut', not {source!r}"
            )
        if source == "measured" and device.kind == "lut-only":
            raise InvalidLatencySourceError(
                f"device {device.name!r} is lut-only: nothing measures on it; use 'lut'"
            )
        if source == "lut":
            _check_table_covers(session, device, supernet)
        resolved[device.name] = source  # type: ignore[assignment]
    return resolved


def _check_table_covers(session: Session, device: Device, supernet: Supernet) -> None:
    row = latest_table(session, device.id, supernet.family)
    if row is None:
        raise InvalidLatencySourceError(_no_table(device, supernet.family))
    keys = family_layer_keys(session, supernet.family)
    if keys is None:
        return
    present = set(
        session.scalars(
            select(LatencyTableEntry.op_key).where(LatencyTableEntry.table_id == row.id)
        )
    )
    missing = [k for k in keys if k not in present]
    if missing:
        raise InvalidLatencySourceError(
            f"latency table {row.id} of device {device.name!r} lacks {len(missing)} of the "
            f"{len(keys)} op keys of family {supernet.family!r} (first: {missing[0]!r}); upload a "
            "table that covers the space (e.g. built with `hwnas lut build`)"
        )
