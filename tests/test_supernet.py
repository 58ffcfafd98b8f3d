"""The Supernet protocol on the built-in family: hashing, exact cost, ONNX, plugins, errors."""

from __future__ import annotations

import itertools

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from service.evaluation.onnx_export import export_onnx
from service.supernets.builtin import MobileNetV3DigitsSupernet, parse_op_key
from service.supernets.elastic_mbv3 import ElasticMobileNetV3
from service.supernets.protocol import Supernet
from service.supernets.registry import available_families, family_names, load_supernet
from service.supernets.space import ActiveWhen, Gene, InvalidConfigError, SearchSpace


@pytest.fixture(scope="module")
def supernet() -> MobileNetV3DigitsSupernet:
    torch.manual_seed(0)
    model = ElasticMobileNetV3()
    # Non-trivial batch-norm statistics, so copying them wrong would change outputs.
    for layer in model.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(layer.weight, 0.5, 1.5)
            torch.nn.init.uniform_(layer.bias, -0.2, 0.2)
            assert layer.running_var is not None
            layer.running_var.uniform_(0.5, 2.0)
    return MobileNetV3DigitsSupernet(model)


def _outputs(supernet: MobileNetV3DigitsSupernet, config: dict) -> torch.Tensor:
    with torch.no_grad():
        return supernet.build_subnet(config, recalibrate=False)(supernet.example_input(4))


def _random_configs(space: SearchSpace, n: int, seed: int = 0) -> list[dict]:
    return space.sample(np.random.default_rng(seed), n)


def test_inactive_genes_do_not_change_hash_or_network(supernet: MobileNetV3DigitsSupernet) -> None:
    space = supernet.space
    config = dict(space.largest())
    config["s1.depth"] = 2  # blocks 2 and 3 of stage 1 become inactive
    variant = dict(config, **{"s1.b2.kernel": 3, "s1.b3.expand": 3, "s1.b3.kernel": 5})
    assert space.config_hash(config) == space.config_hash(variant)
    assert torch.equal(_outputs(supernet, config), _outputs(supernet, variant))


def test_hash_differs_exactly_when_networks_differ(supernet: MobileNetV3DigitsSupernet) -> None:
    space = supernet.space
    configs = _random_configs(space, 6, seed=1)
    # Same networks written differently: perturb inactive genes of each config.
    rewritten = []
    for config in configs:
        copy = dict(config)
        for name in space.names:
            if not space.is_active(config, name):
                copy[name] = space.gene(name).choices[-1]
        rewritten.append(copy)
    outputs = [_outputs(supernet, c) for c in configs]
    rewritten_outputs = [_outputs(supernet, c) for c in rewritten]
    for a, b in itertools.product(range(len(configs)), repeat=2):
        same_hash = space.config_hash(configs[a]) == space.config_hash(rewritten[b])
        same_output = torch.allclose(outputs[a], rewritten_outputs[b], atol=1e-6)
        assert same_hash == same_output, (a, b)


def test_active_gene_change_changes_hash(supernet: MobileNetV3DigitsSupernet) -> None:
    space = supernet.space
    config = space.smallest()
    changed = dict(config, **{"s0.b0.kernel": 7})
    assert space.config_hash(config) != space.config_hash(changed)


@pytest.mark.parametrize("seed", [0, 1])
def test_macs_and_params_match_counters_on_built_module(
    supernet: MobileNetV3DigitsSupernet, seed: int
) -> None:
    space = supernet.space
    for config in [space.smallest(), space.largest(), *_random_configs(space, 3, seed)]:
        module = supernet.build_subnet(config, recalibrate=False)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            module(supernet.example_input(1))
        assert supernet.macs(config) == counter.get_total_flops() // 2
        assert supernet.params(config) == sum(p.numel() for p in module.parameters())


def test_onnx_export_matches_torch(supernet: MobileNetV3DigitsSupernet) -> None:
    for config in _random_configs(supernet.space, 2, seed=3):
        module = supernet.build_subnet(config, recalibrate=False)
        example = supernet.example_input(8)
        session = ort.InferenceSession(export_onnx(module, example))
        (onnx_out,) = session.run(None, {"input": example.numpy()})
        with torch.no_grad():
            torch_out = module(example).numpy()
        np.testing.assert_allclose(onnx_out, torch_out, rtol=1e-4, atol=1e-4)


def test_layer_keys_build_and_round_trip(supernet: MobileNetV3DigitsSupernet) -> None:
    config = _random_configs(supernet.space, 1, seed=4)[0]
    keys = supernet.layer_keys(config)
    assert keys[0].startswith("Conv-") and keys[-1].startswith("Logits-")
    assert len(keys) == 5 + sum(int(config[f"s{s}.depth"]) for s in range(4))
    for key in keys:
        assert parse_op_key(key).key == key
        module, shape = supernet.op_module(key)
        with torch.no_grad():
            module(torch.zeros(2, *shape))
    assert set(keys) <= set(supernet.all_layer_keys())


def test_space_holds_over_a_billion_networks(supernet: MobileNetV3DigitsSupernet) -> None:
    assert supernet.space.log10_size() >= 9


def test_count_distinct_matches_brute_force() -> None:
    space = SearchSpace(
        (
            Gene("depth", (1, 2, 3)),
            Gene("a", (0, 1)),
            Gene("b", (0, 1, 2), ActiveWhen("depth", 2)),
            Gene("c", (5, 6), ActiveWhen("depth", 3)),
        )
    )
    every = itertools.product(*(g.choices for g in space.genes))
    distinct = {space.config_hash(dict(zip(space.names, values, strict=True))) for values in every}
    assert space.count_distinct() == len(distinct) == 2 + 2 * 3 + 2 * 3 * 2


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"s9.depth": 2}, "unknown gene(s) ['s9.depth']"),
        ({"s0.b0.kernel": 4}, "gene 's0.b0.kernel' has value 4; allowed values are [3, 5, 7]"),
        ({"s2.depth": None}, "missing gene(s) ['s2.depth']"),
    ],
)
def test_bad_configs_are_refused_naming_the_gene(
    supernet: MobileNetV3DigitsSupernet, change: dict, expected: str
) -> None:
    config = dict(supernet.space.smallest())
    for name, value in change.items():
        if value is None:
            del config[name]
        else:
            config[name] = value
    with pytest.raises(InvalidConfigError) as error:
        supernet.canonical(config)
    assert expected in str(error.value)
    if "missing" in expected:
        assert "[1, 2, 3, 4]" in str(error.value)


def test_entry_point_plugin_is_discovered() -> None:
    assert "toy-mlp" in available_families()
    assert "toy-mlp" in family_names()
    plugin = load_supernet("toy-mlp")
    assert isinstance(plugin, Supernet)
    config = {"width": 8, "activation": "tanh"}
    module = plugin.build_subnet(config)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(plugin.example_input(1))
    assert plugin.macs(config) == counter.get_total_flops() // 2
    assert 0 <= plugin.evaluate_accuracy([config])[0] <= 100


def test_unknown_family_lists_the_available_ones() -> None:
    with pytest.raises(LookupError, match="mbv3-digits"):
        load_supernet("no-such-family")
