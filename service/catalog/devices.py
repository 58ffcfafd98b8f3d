"""Devices: registration and lookup; a host device's onnxruntime profile. Never commits."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.models import Device
from service.errors import ConflictError, InvalidInputError, NotFoundError
from service.evaluation.profile import DeviceProfile

HOST_DESCRIPTOR_KEYS = tuple(
    f.name for f in dataclasses.fields(DeviceProfile) if f.init and f.name != "name"
)


class UnknownDeviceError(NotFoundError):
    code = "unknown_device"


def get_device(session: Session, device_id: int) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise UnknownDeviceError(f"device {device_id} does not exist; see GET /v1/devices")
    return device


def create_device(session: Session, name: str, kind: str, descriptor: dict[str, Any]) -> Device:
    if kind == "host":
        descriptor = dataclasses.asdict(host_profile_from(name, descriptor))
        descriptor.pop("name")
    elif kind == "agent":  # the agent measures with this profile; other keys describe the device
        profile = {k: v for k, v in descriptor.items() if k in HOST_DESCRIPTOR_KEYS}
        measured = dataclasses.asdict(host_profile_from(name, profile))
        measured.pop("name")
        descriptor = {**descriptor, **measured}
    if session.scalar(select(Device.id).where(Device.name == name)) is not None:
        raise ConflictError(f"a device named {name!r} already exists; choose another name")
    row = Device(name=name, kind=kind, descriptor=descriptor)
    session.add(row)
    session.flush()
    return row


def host_profile_from(name: str, descriptor: dict[str, Any]) -> DeviceProfile:
    """The onnxruntime profile a host device measures with; 422 naming the allowed keys."""
    unknown = sorted(set(descriptor) - set(HOST_DESCRIPTOR_KEYS) - {"runtime"})
    if unknown:
        raise InvalidInputError(
            f"unknown host descriptor key(s) {unknown}; allowed: {list(HOST_DESCRIPTOR_KEYS)}"
        )
    fields = {k: v for k, v in descriptor.items() if k in HOST_DESCRIPTOR_KEYS}
    for key, value in fields.items():
        if isinstance(getattr(DeviceProfile, key, None), bool):
            if not isinstance(value, bool):
                raise InvalidInputError(f"host descriptor {key!r} must be true or false")
        elif isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise InvalidInputError(f"host descriptor {key!r} must be a positive number")
    return DeviceProfile(name=name, **fields)


def list_devices(session: Session) -> list[Device]:
    return list(session.scalars(select(Device).order_by(Device.id)))
