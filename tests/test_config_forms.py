"""OFA-form configs wherever a config goes in the library: converted from a family's stored search
space alone (no weights), and told to the search engine through the family's own `canonical`."""

from __future__ import annotations

import numpy as np
import pytest

from service.search.engine import SearchEngine
from service.search.spec import SearchSpec, parse_objective
from service.supernets.config_forms import gene_form, has_ofa_form, ofa_form
from service.supernets.ofa_mbv3 import OFAMobileNetV3Supernet
from service.supernets.ofa_resnet import OFAResNet50Supernet
from service.supernets.space import InvalidConfigError, SearchSpace


def families() -> list[tuple[str, object]]:
    return [
        ("ofa-mbv3-w1.0", OFAMobileNetV3Supernet("ofa-mbv3-w1.0")),
        ("ofa-mbv3-w1.2", OFAMobileNetV3Supernet("ofa-mbv3-w1.2")),
        ("ofa-resnet50", OFAResNet50Supernet()),
    ]


@pytest.mark.parametrize(("family", "supernet"), families(), ids=lambda f: str(f)[:14])
def test_both_forms_from_the_stored_space_match_the_family(family: str, supernet: object) -> None:
    space = SearchSpace.from_json(supernet.space.to_json())  # type: ignore[attr-defined]
    for config in space.sample(np.random.default_rng(0), 20):
        ofa = ofa_form(family, config, space)
        assert ofa == supernet.to_ofa(config)  # type: ignore[attr-defined]
        assert gene_form(family, ofa, space) == config
        assert gene_form(family, config, space) == config
    assert has_ofa_form(family)


def test_families_without_an_ofa_form_keep_the_gene_form() -> None:
    space = OFAMobileNetV3Supernet("ofa-mbv3-w1.0").space
    config = space.largest()
    assert not has_ofa_form("bert-digits")
    assert ofa_form("bert-digits", config, space) is None
    assert gene_form("bert-digits", config, space) == space.canonical(config)


def test_a_bad_ofa_config_names_the_field() -> None:
    space = OFAMobileNetV3Supernet("ofa-mbv3-w1.0").space
    with pytest.raises(InvalidConfigError, match="'ks'"):
        gene_form("ofa-mbv3-w1.0", {"ks": [3], "e": [3] * 20, "d": [2] * 5}, space)


def test_the_engine_is_told_ofa_form_configs_through_the_family_canonical() -> None:
    supernet = OFAMobileNetV3Supernet("ofa-mbv3-w1.0")
    spec = SearchSpec([parse_objective("accuracy:max")], budget=4, tactic="random")
    told = {"ks": [5] * 20, "e": [4] * 20, "d": [3] * 5, "r": [160]}
    with pytest.raises(InvalidConfigError):
        SearchEngine(supernet.space, spec).tell([told], [{"accuracy": 50.0}])
    engine = SearchEngine(supernet.space, spec, canonical=supernet.canonical)
    engine.tell([told], [{"accuracy": 50.0}])
    [evaluation] = engine.evaluations
    assert evaluation.config == supernet.canonical(told)
    assert supernet.to_ofa(evaluation.config)["r"] == [160]
