"""OFA MobileNetV3 families: OFA's checkpoint layout, weight slicing, BN recalibration, configs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from service.supernets.ofa_mbv3 import (
    CheckpointError,
    OFAMobileNetV3Supernet,
    load_ofa_mbv3,
    set_running_statistics,
)
from service.supernets.ofa_mbv3_net import MBv3Arch, OFAMobileNetV3
from service.supernets.protocol import Supernet
from service.supernets.registry import family_names, load_supernet
from service.supernets.space import InvalidConfigError

DATA = Path(__file__).parent / "data"
FAMILIES = ("ofa-mbv3-w1.0", "ofa-mbv3-w1.2")
WIDTH = {"ofa-mbv3-w1.0": "1.0", "ofa-mbv3-w1.2": "1.2"}


def expected_layout(family: str) -> dict[str, tuple[int, ...]]:
    """OFA's released checkpoint keys and shapes, as written in tests/data from OFA's source."""
    out: dict[str, tuple[int, ...]] = {}
    for line in (DATA / f"ofa_mbv3_w{WIDTH[family]}_state_dict.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape = line.split()
            out[key] = () if shape == "-" else tuple(int(d) for d in shape.split("x"))
    return out


def ofa_layout_state(family: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random-weight state dict built only from the expected layout (not from our module)."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in expected_layout(family).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith(("running_var", "bn.weight")):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.2
    return state


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread: on a shared CPU, more threads make these small networks much slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def supernet() -> OFAMobileNetV3Supernet:
    """w1.0 with every weight random, BN statistics and kernel transforms far from defaults."""
    model = OFAMobileNetV3(MBv3Arch(1.0))
    model.load_state_dict(ofa_layout_state("ofa-mbv3-w1.0"), strict=True)
    return OFAMobileNetV3Supernet("ofa-mbv3-w1.0", model)


@pytest.mark.parametrize("family", FAMILIES)
def test_state_dict_keys_and_shapes_are_those_of_ofa_checkpoints(family: str) -> None:
    model = OFAMobileNetV3(MBv3Arch(float(WIDTH[family])))
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == expected_layout(family)


@pytest.mark.parametrize("family", FAMILIES)
def test_ofa_checkpoint_file_loads_strictly(family: str, tmp_path: Path) -> None:
    state = ofa_layout_state(family, seed=3)
    path = tmp_path / "ofa.pth"
    torch.save({"state_dict": state, "epoch": 180}, path)
    loaded = load_ofa_mbv3(family, path)
    assert isinstance(loaded, Supernet)
    own = loaded.model.state_dict()
    assert set(own) == set(state)
    assert all(torch.equal(own[k], v) for k, v in state.items())
    # strict=True on a fresh module as well
    OFAMobileNetV3(MBv3Arch(float(WIDTH[family]))).load_state_dict(state, strict=True)


def test_checkpoint_in_ofas_newer_naming_and_without_bn_counters_loads(tmp_path: Path) -> None:
    state = ofa_layout_state("ofa-mbv3-w1.0")
    newer = {
        "module." + k.replace(".mobile_inverted_conv.", ".conv."): v
        for k, v in state.items()
        if not k.endswith("num_batches_tracked")
    }
    path = tmp_path / "newer.pth"
    torch.save(newer, path)
    loaded = load_ofa_mbv3("ofa-mbv3-w1.0", path)
    key = "blocks.7.mobile_inverted_conv.depth_conv.conv.7to5_matrix"
    assert torch.equal(loaded.model.state_dict()[key], state[key])


def test_mismatched_checkpoint_is_refused_naming_keys(tmp_path: Path) -> None:
    state = ofa_layout_state("ofa-mbv3-w1.0")
    del state["blocks.3.mobile_inverted_conv.depth_conv.conv.5to3_matrix"]
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(CheckpointError, match=r"5to3_matrix.*extra\.weight"):
        load_ofa_mbv3("ofa-mbv3-w1.0", path)
    torch.save({"state_dict": ofa_layout_state("ofa-mbv3-w1.2")}, path)
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_ofa_mbv3("ofa-mbv3-w1.0", path)


def _bn(x: torch.Tensor, sd: dict[str, torch.Tensor], prefix: str, c: int) -> torch.Tensor:
    mean, var = sd[f"{prefix}.running_mean"][:c], sd[f"{prefix}.running_var"][:c]
    weight, bias = sd[f"{prefix}.weight"][:c], sd[f"{prefix}.bias"][:c]
    scale = weight / torch.sqrt(var + 1e-5)
    return (x - mean[None, :, None, None]) * scale[None, :, None, None] + bias[None, :, None, None]


def _hswish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.clamp(x + 3, 0, 6) / 6


def _block_by_hand(
    sd: dict[str, torch.Tensor], x: torch.Tensor, mid: int, se_mid: int, stride: int, hs: bool
) -> torch.Tensor:
    """One elastic block at kernel 3, composed from the checkpoint's tensors by hand."""
    act = _hswish if hs else torch.relu
    y = act(
        _bn(
            F.conv2d(x, sd["inverted_bottleneck.conv.conv.weight"][:mid]),
            sd,
            "inverted_bottleneck.bn.bn",
            mid,
        )
    )
    w7 = sd["depth_conv.conv.conv.weight"][:mid]
    w5 = (w7[:, :, 1:6, 1:6].reshape(mid, 25) @ sd["depth_conv.conv.7to5_matrix"].T).reshape(
        mid, 1, 5, 5
    )
    w3 = (w5[:, :, 1:4, 1:4].reshape(mid, 9) @ sd["depth_conv.conv.5to3_matrix"].T).reshape(
        mid, 1, 3, 3
    )
    y = act(_bn(F.conv2d(y, w3, stride=stride, padding=1, groups=mid), sd, "depth_conv.bn.bn", mid))
    s = y.mean((2, 3), keepdim=True)
    s = F.conv2d(
        s,
        sd["depth_conv.se.fc.reduce.weight"][:se_mid, :mid],
        sd["depth_conv.se.fc.reduce.bias"][:se_mid],
    )
    s = F.conv2d(
        torch.relu(s),
        sd["depth_conv.se.fc.expand.weight"][:mid, :se_mid],
        sd["depth_conv.se.fc.expand.bias"][:mid],
    )
    y = y * torch.clamp(s + 3, 0, 6) / 6
    out = sd["point_linear.conv.conv.weight"].shape[0]
    return _bn(
        F.conv2d(y, sd["point_linear.conv.conv.weight"][:, :mid]), sd, "point_linear.bn.bn", out
    )


# (OFA block index, input channels, expand 4 → middle channels, SE channels, stride, h-swish)
HAND_BLOCKS = [(5, 24, 96, 24, 2, False), (14, 112, 448, 112, 1, True)]


@pytest.mark.parametrize(("index", "in_c", "mid", "se_mid", "stride", "hs"), HAND_BLOCKS)
def test_one_block_equals_the_computation_by_hand(
    supernet: OFAMobileNetV3Supernet,
    index: int,
    in_c: int,
    mid: int,
    se_mid: int,
    stride: int,
    hs: bool,
) -> None:
    layer = supernet.model.blocks[index].mobile_inverted_conv
    sd = layer.state_dict()
    x = torch.randn(2, in_c, 12, 12, generator=torch.Generator().manual_seed(1))
    expected = _block_by_hand(sd, x, mid, se_mid, stride, hs)
    with torch.no_grad():
        dynamic = layer(x, 3, 4)
        static = layer.build_static(3, 4).eval()(x)
    assert static.shape == expected.shape
    torch.testing.assert_close(dynamic, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(static, expected, rtol=1e-4, atol=1e-4)


def test_subnetwork_equals_supernet_forward_on_its_blocks(supernet: OFAMobileNetV3Supernet) -> None:
    configs = supernet.space.sample(np.random.default_rng(0), 3)
    for config in [supernet.space.smallest(), *configs]:
        config = dict(config, resolution=128)
        x = supernet.example_input(2, config)
        with torch.no_grad():
            static = supernet.build_subnet(config)(x)
            dynamic = supernet.model(x, supernet.blocks(config))
        torch.testing.assert_close(static, dynamic, rtol=1e-4, atol=1e-4)


def test_inactive_genes_change_neither_hash_nor_network(supernet: OFAMobileNetV3Supernet) -> None:
    space = supernet.space
    config = dict(space.smallest())  # depth 2 everywhere: blocks 2 and 3 inactive
    variant = dict(config, **{"s2.b3.kernel": 7, "s2.b2.expand": 6})
    assert space.config_hash(config) == space.config_hash(variant)
    x = supernet.example_input(1, config)
    with torch.no_grad():
        assert torch.equal(supernet.build_subnet(config)(x), supernet.build_subnet(variant)(x))


def test_ofa_form_and_gene_form_are_one_config(supernet: OFAMobileNetV3Supernet) -> None:
    ofa = {"ks": [3, 5, 7, 3] * 5, "e": [3, 4, 6, 6] * 5, "d": [2, 3, 4, 2, 3], "r": [160]}
    genes = supernet.from_ofa(ofa)
    assert genes["resolution"] == 160 and genes["s1.b2.kernel"] == 7 and genes["s1.b3.kernel"] == 3
    assert supernet.canonical(ofa) == supernet.canonical(genes) == genes
    back = supernet.to_ofa(genes)
    assert back["d"] == ofa["d"] and back["r"] == [160]
    assert supernet.canonical(back) == genes
    # inactive blocks (beyond a stage's depth) are written canonically
    assert back["ks"][3] == 3 and back["e"][3] == 3
    assert supernet.macs(ofa) == supernet.macs(genes)
    assert supernet.layer_keys(ofa) == supernet.layer_keys(genes)
    no_r = {k: v for k, v in ofa.items() if k != "r"}
    assert supernet.canonical(no_r)["resolution"] == 224  # OFA's own configs omit r


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"ks": [3] * 19, "e": [3] * 20, "d": [2] * 5}, "'ks' must be a list of 20"),
        ({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": [100]}, "'resolution' has value 100"),
        ({"ks": [3] * 20, "e": [5] * 20, "d": [2] * 5}, "expand' has value 5"),
        ({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "w": [1]}, "unknown OFA config field"),
        ({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": [160, 224]}, "one resolution"),
    ],
)
def test_bad_ofa_configs_name_the_field(
    supernet: OFAMobileNetV3Supernet, config: dict, message: str
) -> None:
    with pytest.raises(InvalidConfigError, match=message):
        supernet.canonical(config)


def test_w12_space_takes_the_resolutions_ofa_trained_it_for() -> None:
    space = OFAMobileNetV3Supernet("ofa-mbv3-w1.2").space
    assert space.gene("resolution").choices == (160, 176, 192, 208, 224)
    space = OFAMobileNetV3Supernet("ofa-mbv3-w1.0").space
    assert space.gene("resolution").choices == (128, 144, 160, 176, 192, 208, 224)


def _counted(module: torch.nn.Module, x: torch.Tensor) -> tuple[int, int]:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(x)
    return counter.get_total_flops() // 2, sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("family", FAMILIES)
def test_macs_and_params_equal_a_counter_on_the_built_network(family: str) -> None:
    supernet = OFAMobileNetV3Supernet.random(family)
    space = supernet.space
    configs = [space.smallest(), space.largest(), *space.sample(np.random.default_rng(2), 2)]
    for config in configs:
        subnet = supernet.build_subnet(config)
        macs, params = _counted(subnet, supernet.example_input(1, config))
        assert (supernet.macs(config), supernet.params(config)) == (macs, params)


def test_published_size_of_the_largest_w10_network() -> None:
    supernet = OFAMobileNetV3Supernet("ofa-mbv3-w1.0")  # no weights: costs only
    largest = supernet.space.largest()
    assert supernet.params(largest) == 7_664_760  # OFA: ≈ 7.7 M parameters
    assert supernet.macs(largest) == 566_170_656
    assert supernet.macs(supernet.space.smallest()) == 41_476_224


def test_without_checkpoint_costs_work_and_building_is_refused() -> None:
    assert {"ofa-mbv3-w1.0", "ofa-mbv3-w1.2"} <= set(family_names())
    supernet = load_supernet("ofa-mbv3-w1.0")
    assert supernet.macs(supernet.space.smallest()) > 0
    with pytest.raises(CheckpointError, match="without a checkpoint"):
        supernet.build_subnet(supernet.space.smallest())
    with pytest.raises(CheckpointError, match="no image data"):
        supernet.evaluate_accuracy([supernet.space.smallest()])


def test_bn_recalibration_sets_batch_size_weighted_batch_statistics(
    supernet: OFAMobileNetV3Supernet,
) -> None:
    config = dict(supernet.space.smallest(), resolution=128)
    subnet = supernet.build_subnet(config)
    generator = torch.Generator().manual_seed(5)
    batches = [
        torch.randn(3, 3, 128, 128, generator=generator) + 0.5,
        torch.randn(1, 3, 128, 128, generator=generator),
    ]
    bn = subnet.first_conv.bn
    before = bn.running_mean.clone()
    set_running_statistics(subnet, batches)
    stats = []
    with torch.no_grad():
        for batch in batches:
            y = subnet.first_conv.conv(batch)
            mean = y.mean((0, 2, 3))
            stats.append((mean, ((y - mean[None, :, None, None]) ** 2).mean((0, 2, 3)), len(batch)))
    expected_mean = sum(m * n for m, _, n in stats) / 4
    expected_var = sum(v * n for _, v, n in stats) / 4
    assert not torch.allclose(before, bn.running_mean)
    torch.testing.assert_close(bn.running_mean, expected_mean, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bn.running_var, expected_var, rtol=1e-4, atol=1e-5)
    assert not subnet.training


def test_bn_recalibration_of_a_deep_layer_sees_batch_normalised_inputs(
    supernet: OFAMobileNetV3Supernet,
) -> None:
    config = dict(supernet.space.smallest(), resolution=128)
    subnet = supernet.build_subnet(config)
    images = torch.randn(4, 3, 128, 128, generator=torch.Generator().manual_seed(6))
    captured: list[torch.Tensor] = []
    last_bn = subnet.final_expand_layer.bn
    probe = torch.nn.Module.register_forward_pre_hook(last_bn, lambda m, a: captured.append(a[0]))
    with torch.no_grad():
        subnet.train()(images)  # train mode: every BN normalises by the batch, as OFA recalibrates
    probe.remove()
    set_running_statistics(subnet, [images])
    x = captured[0]
    torch.testing.assert_close(last_bn.running_mean, x.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        last_bn.running_var, x.var((0, 2, 3), unbiased=False), rtol=1e-4, atol=1e-5
    )


def test_subnetwork_exports_to_onnx_and_runs_the_same(supernet: OFAMobileNetV3Supernet) -> None:
    import onnxruntime as ort

    from service.evaluation.onnx_export import export_onnx

    config = dict(supernet.space.sample(np.random.default_rng(9), 1)[0], resolution=128)
    subnet = supernet.build_subnet(config)
    x = supernet.example_input(1, config)
    session = ort.InferenceSession(export_onnx(subnet, x), providers=["CPUExecutionProvider"])
    (ours,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        reference = subnet(x).numpy()
    # random weights give logits in the hundreds: compare relative to their scale
    assert np.abs(ours - reference).max() <= 1e-4 * np.abs(reference).max()
