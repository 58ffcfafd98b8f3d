"""Supernet families: the built-ins plus those registered in the `hwnas.supernets` entry points.

An entry point names a factory `factory(checkpoint: str | None) -> Supernet`; `None` means the
family's default weights.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib.metadata import entry_points

from service.supernets.protocol import Supernet

ENTRY_POINT_GROUP = "hwnas.supernets"
SupernetFactory = Callable[[str | None], Supernet]


class UnknownFamilyError(LookupError):
    pass


def _builtin_mbv3_digits(checkpoint: str | None) -> Supernet:
    from service.supernets.builtin import load_mbv3_digits

    return load_mbv3_digits(checkpoint)


BUILTIN_FAMILIES: dict[str, SupernetFactory] = {"mbv3-digits": _builtin_mbv3_digits}


def available_families() -> dict[str, SupernetFactory]:
    """Built-in families and every installed plugin, by family name."""
    families = dict(BUILTIN_FAMILIES)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        families.setdefault(ep.name, ep.load())
    return families


def load_supernet(family: str, checkpoint: str | None = None) -> Supernet:
    families = available_families()
    if family not in families:
        raise UnknownFamilyError(
            f"unknown supernet family {family!r}; available: {sorted(families)}"
        )
    supernet = families[family](checkpoint)
    if not isinstance(supernet, Supernet):
        raise TypeError(f"family {family!r} did not return an object with the Supernet protocol")
    return supernet


@cache
def builtin_supernet() -> Supernet:
    """The project's own trained supernet with its shipped checkpoint, loaded once per process."""
    return load_supernet("mbv3-digits")
