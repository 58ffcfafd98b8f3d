"""A family's configs in both forms without loading its weights: hwnas's gene form and, for the OFA
families, OFA/DyNAS-T's dict form (`{"ks", "e", "d", "r"}`; ResNet50: `{"d", "e", "w", "r"}`).

Only the search space is needed (the one stored with a registered supernet), so the API and the
exports convert configs without a checkpoint at hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.supernets.space import Config, SearchSpace

OFA_MBV3_FAMILIES = ("ofa-mbv3-w1.0", "ofa-mbv3-w1.2")
OFA_RESNET_FAMILY = "ofa-resnet50"


def has_ofa_form(family: str) -> bool:
    return family in OFA_MBV3_FAMILIES or family == OFA_RESNET_FAMILY


def gene_form(family: str, config: Mapping[str, Any], space: SearchSpace) -> Config:
    """The canonical gene-form config of `config`, given in either form (raises
    `InvalidConfigError` naming the field to fix)."""
    if family in OFA_MBV3_FAMILIES:
        from service.supernets.ofa_config import canonical_config

        return canonical_config(config, space)
    if family == OFA_RESNET_FAMILY and any(k in config for k in ("d", "e", "w")):
        from service.supernets.ofa_resnet import resnet_from_ofa

        return resnet_from_ofa(config, space)
    return space.canonical(config)


def ofa_form(family: str, config: Mapping[str, Any], space: SearchSpace) -> dict[str, Any] | None:
    """OFA's dict form of a config of an OFA family; None for other families."""
    if family in OFA_MBV3_FAMILIES:
        from service.supernets.ofa_config import to_ofa

        return to_ofa(config, space)
    if family == OFA_RESNET_FAMILY:
        from service.supernets.ofa_resnet import resnet_to_ofa

        return resnet_to_ofa(gene_form(family, config, space))
    return None
