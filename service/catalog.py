"""Supernets and devices: registration, lookup, and what each device can measure. Never commits."""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.errors import ConflictError, InvalidInputError, NotFoundError
from service.evaluation.latency import DeviceProfile
from service.models import Device, Supernet
from service.supernets.checksum import sha256_of
from service.supernets.protocol import Supernet as SupernetModel
from service.supernets.registry import UnknownFamilyError, family_names, load_supernet

HOST_DESCRIPTOR_KEYS = tuple(
    f.name for f in dataclasses.fields(DeviceProfile) if f.init and f.name != "name"
)


class UnknownSupernetError(NotFoundError):
    code = "unknown_supernet"


class UnknownFamilyInputError(InvalidInputError):
    code = "unknown_family"


@lru_cache(maxsize=4)
def loaded_supernet(family: str, checkpoint: str | None) -> SupernetModel:
    """The supernet of `family` with `checkpoint`, loaded once per process."""
    return load_supernet(family, checkpoint)


def register_supernet(session: Session, name: str, family: str, checkpoint: str | None) -> Supernet:
    """Load the family (to check it and read its space and dataset) and store it under `name`."""
    families = family_names()
    if family not in families:
        raise UnknownFamilyInputError(
            f"unknown supernet family {family!r}; installed families: {families}"
        )
    sha256 = None
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise InvalidInputError(f"checkpoint {checkpoint!r} is not a file on the server")
        checkpoint, sha256 = str(path.resolve()), sha256_of(path)
    if session.scalar(select(Supernet.id).where(Supernet.name == name)) is not None:
        raise ConflictError(f"a supernet named {name!r} already exists; choose another name")
    try:
        model = loaded_supernet(family, checkpoint)
    except UnknownFamilyError as exc:
        raise UnknownFamilyInputError(str(exc)) from exc
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"family {family!r} could not load its weights: {exc}") from exc
    row = Supernet(
        name=name,
        family=family,
        checkpoint_uri=checkpoint,
        checkpoint_sha256=sha256,
        dataset=model.dataset,
        search_space=model.space.to_json(),
        exact_ranges=exact_ranges(model),
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        raise ConflictError(f"a supernet named {name!r} already exists") from exc
    return row


def exact_ranges(model: SupernetModel) -> dict[str, list[float]]:
    """MACs and params of the smallest and the largest network of the space."""
    smallest, largest = model.space.smallest(), model.space.largest()
    return {
        "macs": [float(model.macs(smallest)), float(model.macs(largest))],
        "params": [float(model.params(smallest)), float(model.params(largest))],
    }


def list_supernets(session: Session) -> list[Supernet]:
    return list(session.scalars(select(Supernet).order_by(Supernet.id)))


def get_supernet(session: Session, supernet_id: int) -> Supernet:
    row = session.get(Supernet, supernet_id)
    if row is None:
        raise UnknownSupernetError(f"supernet {supernet_id} does not exist; see GET /v1/supernets")
    return row


def find_supernet(session: Session, name: str) -> Supernet | None:
    return session.scalar(select(Supernet).where(Supernet.name == name))


def supernet_model(row: Supernet) -> SupernetModel:
    return loaded_supernet(row.family, row.checkpoint_uri)


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


def can_measure_latency(session: Session, device: Device) -> bool:
    """Host devices measure in the service, agent devices through `hwnas agent`; a lut-only
    device provides latency once it has a latency table."""
    if device.kind == "lut-only":
        from service.device_latency import has_table

        return has_table(session, device.id)
    return True


def why_cannot_measure(device: Device) -> str:
    return (
        f"device {device.name!r} is lut-only and has no latency table yet; upload one with "
        f"POST /v1/devices/{device.id}/latency-tables"
    )
