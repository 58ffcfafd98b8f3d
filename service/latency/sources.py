"""Where a job's latency comes from, per device.

A device's latency is either `measured` (the service host itself, or a device agent) or read from
its latency lookup table (`lut`: the calibrated estimator when a calibration was uploaded, else the
plain sum of the ops' entries). Never commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from latency_tables import LatencyTable, estimate_latency
from service.db.models import Device, LatencyTableEntry, Supernet
from service.errors import InvalidInputError
from service.latency.tables import (
    calibrated_estimator,
    family_layer_keys,
    has_table,
    latest_table,
    load_table,
)
from service.search.metrics import MetricName
from service.search.spec import SearchSpec

LatencySource = Literal["measured", "lut"]
DEFAULT_LATENCY_SOURCE: dict[str, LatencySource] = {
    "host": "measured",
    "agent": "measured",
    "lut-only": "lut",
}


class InvalidLatencySourceError(InvalidInputError):
    code = "invalid_latency_source"


def can_measure_latency(session: Session, device: Device) -> bool:
    """Host devices measure in the service, agent devices through `hwnas agent`; a lut-only
    device provides latency once it has a latency table."""
    if device.kind == "lut-only":
        return has_table(session, device.id)
    return True


def why_cannot_measure(device: Device) -> str:
    return (
        f"device {device.name!r} is lut-only and has no latency table yet; upload one with "
        f"POST /v1/devices/{device.id}/latency-tables"
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
            estimator = calibrated_estimator(self.table, self.calibration)
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


def latency_devices(session: Session, spec: SearchSpec) -> list[Device]:
    """The devices whose latency the spec asks for, in the order first named."""
    metrics = [MetricName.parse(m) for m in spec.metrics]
    names = [m.device for m in metrics if m.is_latency and m.device is not None]
    rows = {d.name: d for d in session.scalars(select(Device).where(Device.name.in_(names)))}
    return [rows[n] for n in names if n in rows]
