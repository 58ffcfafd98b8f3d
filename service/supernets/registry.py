"""Supernet families: the built-ins plus those registered in the `hwnas.supernets` entry points.

An entry point names a factory `factory(checkpoint: str | None) -> Supernet`; `None` means the
family's default weights. A family that takes registration data (an image folder, resolutions)
accepts a second argument, `factory(checkpoint, options: DataOptions | None)`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from service.supernets.data_options import DataOptions
from service.supernets.protocol import Supernet

ENTRY_POINT_GROUP = "hwnas.supernets"
SupernetFactory = Callable[..., Supernet]


class UnknownFamilyError(LookupError):
    pass


class DataOptionsRefusedError(ValueError):
    """Data options given to a family that reads its own dataset."""


def _builtin_mbv3_digits(checkpoint: str | None) -> Supernet:
    from service.supernets.builtin import load_mbv3_digits

    return load_mbv3_digits(checkpoint)


def _builtin_bert_digits(checkpoint: str | None) -> Supernet:
    from service.supernets.bert_digits import load_bert_digits

    return load_bert_digits(checkpoint)


def _ofa_mbv3(family: str) -> SupernetFactory:
    """OFA's MobileNetV3 supernets: with OFA's checkpoint they build and evaluate sub-networks;
    without one they answer costs and latency-table keys only (see docs/supernets.md)."""

    def factory(checkpoint: str | None, options: DataOptions | None = None) -> Supernet:
        from service.supernets.ofa_mbv3 import load_ofa_mbv3

        options = options or DataOptions()
        return load_ofa_mbv3(family, checkpoint, options.splits(), options.resolutions)

    return factory


def _ofa_resnet50(checkpoint: str | None, options: DataOptions | None = None) -> Supernet:
    from service.supernets.ofa_resnet import load_ofa_resnet50

    options = options or DataOptions()
    return load_ofa_resnet50(checkpoint, options.splits(), options.resolutions)


BUILTIN_FAMILIES: dict[str, SupernetFactory] = {
    "mbv3-digits": _builtin_mbv3_digits,
    "bert-digits": _builtin_bert_digits,
    "ofa-mbv3-w1.0": _ofa_mbv3("ofa-mbv3-w1.0"),
    "ofa-mbv3-w1.2": _ofa_mbv3("ofa-mbv3-w1.2"),
    "ofa-resnet50": _ofa_resnet50,
}


def available_families() -> dict[str, SupernetFactory]:
    """Built-in families and every installed plugin, by family name."""
    families = dict(BUILTIN_FAMILIES)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        families.setdefault(ep.name, ep.load())
    return families


def family_names() -> list[str]:
    """Names of the built-in and installed families, without importing any plugin."""
    names = set(BUILTIN_FAMILIES) | {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(names)


def _factory(family: str) -> SupernetFactory:
    if family in BUILTIN_FAMILIES:
        return BUILTIN_FAMILIES[family]
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=family):
        factory: SupernetFactory = ep.load()
        return factory
    raise UnknownFamilyError(f"unknown supernet family {family!r}; available: {family_names()}")


def takes_data_options(factory: Callable[..., Any]) -> bool:
    """Whether a factory accepts a second positional argument (the data options)."""
    try:
        parameters = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return True
    return sum(p.kind in positional for p in parameters) >= 2


def load_supernet(
    family: str, checkpoint: str | None = None, options: DataOptions | None = None
) -> Supernet:
    """Load one family; only its own plugin is imported, so a broken plugin affects no other."""
    factory = _factory(family)
    if options is None:
        supernet = factory(checkpoint)
    elif takes_data_options(factory):
        supernet = factory(checkpoint, options)
    else:
        raise DataOptionsRefusedError(
            f"family {family!r} reads its own dataset and takes no data options (image folder, "
            "resolutions); register it without `data`"
        )
    if not isinstance(supernet, Supernet):
        raise TypeError(f"family {family!r} did not return an object with the Supernet protocol")
    return supernet


@cache
def builtin_supernet() -> Supernet:
    """The project's own trained supernet with its shipped checkpoint, loaded once per process."""
    return load_supernet("mbv3-digits")
