"""Devices: registration and lookup; a host device's onnxruntime profile. Never commits."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db.models import Device
from service.errors import ConflictError, InvalidInputError, NotFoundError
from service.evaluation.profile import DeviceProfile

HOST_DESCRIPTOR_KEYS = tuple(
    f.name for f in dataclasses.fields(DeviceProfile) if f.init and f.name != "name"
)
# DeviceProfile's field annotations carry the constraints (strict whole numbers > 0, finite
# floats, booleans); pydantic checks a descriptor against them.
_PROFILE = TypeAdapter(DeviceProfile)


class UnknownDeviceError(NotFoundError):
    code = "unknown_device"


def get_device(session: Session, device_id: int) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise UnknownDeviceError(f"device {device_id} does not exist; see GET /v1/devices")
    return device


def find_device(session: Session, name: str) -> Device | None:
    return session.scalar(select(Device).where(Device.name == name))


def create_device(session: Session, name: str, kind: str, descriptor: dict[str, Any]) -> Device:
    if kind == "host":
        descriptor = dataclasses.asdict(host_profile_from(name, descriptor))
        descriptor.pop("name")
    elif kind == "agent":  # the agent measures with this profile; other keys describe the device
        profile = {k: v for k, v in descriptor.items() if k in HOST_DESCRIPTOR_KEYS}
        measured = dataclasses.asdict(host_profile_from(name, profile))
        measured.pop("name")
        descriptor = {**descriptor, **measured}
    taken = select(Device.id).where(func.lower(Device.name) == name.lower()).limit(1)
    if session.scalar(taken) is not None:
        raise ConflictError(
            f"a device named {name!r} already exists (names are compared ignoring case); "
            "choose another name"
        )
    row = Device(name=name, kind=kind, descriptor=descriptor)
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create of the same name won the race
        raise ConflictError(f"a device named {name!r} already exists") from exc
    return row


def host_profile_from(name: str, descriptor: dict[str, Any]) -> DeviceProfile:
    """The onnxruntime profile a host device measures with; 422 naming the bad or unknown keys."""
    unknown = sorted(set(descriptor) - set(HOST_DESCRIPTOR_KEYS) - {"runtime"})
    if unknown:
        raise InvalidInputError(
            f"unknown host descriptor key(s) {unknown}; allowed: {list(HOST_DESCRIPTOR_KEYS)}"
        )
    fields = {k: v for k, v in descriptor.items() if k in HOST_DESCRIPTOR_KEYS}
    try:
        return _PROFILE.validate_python({**fields, "name": name})
    except ValidationError as error:
        problems = "; ".join(
            f"host descriptor {'.'.join(map(str, e['loc']))!r} {_EXPECTED.get(e['type'], e['msg'])}"
            for e in error.errors()
        )
        raise InvalidInputError(problems) from error


# What pydantic's error types mean for a descriptor field, in the words of the docs.
_EXPECTED = {
    "bool_type": "must be true or false",
    "int_type": "must be a positive number, a whole one",
    "int_from_float": "must be a positive number, a whole one",
    "float_type": "must be a positive number",
    "finite_number": "must be a finite positive number",
    "greater_than": "must be a positive number",
}


def list_devices(session: Session) -> list[Device]:
    return list(session.scalars(select(Device).order_by(Device.id)))
