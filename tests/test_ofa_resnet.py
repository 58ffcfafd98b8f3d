"""ofa-resnet50: OFA's layout, weight slicing, costs against a counter and published figures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from service.supernets.ofa_mbv3 import CheckpointError, load_state
from service.supernets.ofa_resnet import (
    OFAResNet50Supernet,
    load_ofa_resnet50,
    normalise_resnet_state_dict,
)
from service.supernets.ofa_resnet_net import Bottleneck, OFAResNet50, bottleneck_forward
from service.supernets.protocol import Supernet
from service.supernets.registry import load_supernet
from service.supernets.space import InvalidConfigError

LAYOUT = Path(__file__).parent / "data" / "ofa_resnet50_state_dict.txt"


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def expected_layout() -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for line in LAYOUT.read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape = line.split()
            out[key] = () if shape == "-" else tuple(int(d) for d in shape.split("x"))
    return out


def layout_state(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in expected_layout().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(3)
        elif key.endswith(("running_var", "bn.weight")):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.05
    return state


@pytest.fixture(scope="module")
def supernet() -> OFAResNet50Supernet:
    model = OFAResNet50()
    model.load_state_dict(layout_state(), strict=True)
    return OFAResNet50Supernet(model)


def resnet50d(space_names: list[str]) -> dict:
    """ResNet50-D itself: depths 3, 4, 6, 3, full width, expand 0.25, the full stem, at 224."""
    config: dict = {"resolution": 224, "stem.depth": 2, "stem.w0": 2, "stem.w2": 2}
    for s, d in enumerate((1, 2, 2, 1)):
        config[f"s{s}.depth"], config[f"s{s}.width"] = d, 2
    config.update({n: 0.25 for n in space_names if n.endswith(".expand")})
    return config


def test_state_dict_is_ofas_layout_and_loads_strictly(tmp_path: Path) -> None:
    ours = {k: tuple(v.shape) for k, v in OFAResNet50().state_dict().items()}
    assert ours == expected_layout()
    path = tmp_path / "ofa_resnet50.pth"
    state = layout_state(seed=1)
    torch.save({"state_dict": state}, path)
    loaded = load_ofa_resnet50(path)
    assert isinstance(loaded, Supernet)
    assert all(torch.equal(loaded.model.state_dict()[k], v) for k, v in state.items())
    # static-layer names, as OFA's own loader also accepts them
    static = {
        k.replace("conv.conv.weight", "conv.weight").replace("bn.bn.", "bn."): v
        for k, v in state.items()
    }
    static = {k.replace("linear.linear.", "linear."): v for k, v in static.items()}
    model = OFAResNet50()
    model.load_state_dict(
        normalise_resnet_state_dict(static, list(model.state_dict())), strict=True
    )
    key = "blocks.3.conv2.conv.conv.weight"
    assert torch.equal(model.state_dict()[key], state[key])
    del state["blocks.0.downsample.bn.bn.bias"]
    with pytest.raises(CheckpointError, match=r"missing \['blocks\.0\.downsample\.bn\.bn\.bias'\]"):
        load_state(model, state, "OFA ResNet50")


def _bn(x: torch.Tensor, sd: dict, prefix: str, c: int) -> torch.Tensor:
    scale = sd[f"{prefix}.weight"][:c] / torch.sqrt(sd[f"{prefix}.running_var"][:c] + 1e-5)
    shift = sd[f"{prefix}.bias"][:c] - sd[f"{prefix}.running_mean"][:c] * scale
    return x * scale[None, :, None, None] + shift[None, :, None, None]


def test_one_bottleneck_equals_the_computation_by_hand(supernet: OFAResNet50Supernet) -> None:
    """Stage 1's first block at width 0.8 (408 channels) and expand 0.2 (middle 80), fed by 208
    channels of stage 0 at width 0.8: stride 2, average-pool + 1×1 shortcut."""
    sd = {k: v for k, v in supernet.model.state_dict().items() if k.startswith("blocks.4.")}
    sd = {k.removeprefix("blocks.4."): v for k, v in sd.items()}
    x = torch.randn(2, 208, 10, 10, generator=torch.Generator().manual_seed(2))
    mid, out = 80, 408
    y = F.relu(_bn(F.conv2d(x, sd["conv1.conv.conv.weight"][:mid, :208]), sd, "conv1.bn.bn", mid))
    y = F.relu(
        _bn(
            F.conv2d(y, sd["conv2.conv.conv.weight"][:mid, :mid], stride=2, padding=1),
            sd,
            "conv2.bn.bn",
            mid,
        )
    )
    y = _bn(F.conv2d(y, sd["conv3.conv.conv.weight"][:out, :mid]), sd, "conv3.bn.bn", out)
    shortcut = F.conv2d(
        F.avg_pool2d(x, 2, 2, ceil_mode=True), sd["downsample.conv.conv.weight"][:out, :208]
    )
    expected = F.relu(y + _bn(shortcut, sd, "downsample.bn.bn", out))
    plan = Bottleneck(4, 208, mid, out, 2, 10)
    with torch.no_grad():
        dynamic = bottleneck_forward(supernet.model.blocks[4], x, plan)
    torch.testing.assert_close(dynamic, expected, rtol=1e-4, atol=1e-4)
    config = dict(
        supernet.space.smallest(),
        resolution=128,
        **{"s0.width": 1, "s1.width": 1, "s1.b0.expand": 0.2},
    )
    subnet = supernet.build_subnet(config)
    assert subnet.blocks[2].conv1.conv.weight.shape == (mid, 208, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(subnet.blocks[2](x), expected, rtol=1e-4, atol=1e-4)


def test_subnetworks_equal_the_supernet_forward(supernet: OFAResNet50Supernet) -> None:
    configs = [supernet.space.smallest(), *supernet.space.sample(np.random.default_rng(0), 2)]
    for config in configs:
        config = dict(config, resolution=128)
        x = supernet.example_input(1, config)
        with torch.no_grad():
            torch.testing.assert_close(
                supernet.build_subnet(config)(x),
                supernet.model(x, supernet.plan(config)),
                rtol=1e-4,
                atol=1e-4,
            )


def test_costs_equal_a_counter_and_resnet50d_figures(supernet: OFAResNet50Supernet) -> None:
    space = supernet.space
    for config in [space.smallest(), *space.sample(np.random.default_rng(3), 2)]:
        config = dict(config, resolution=128)
        subnet = supernet.build_subnet(config)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            subnet(supernet.example_input(1, config))
        assert supernet.macs(config) == counter.get_total_flops() // 2
        assert supernet.params(config) == sum(p.numel() for p in subnet.parameters())
    config = resnet50d(space.names)
    assert supernet.params(config) == 25_576_264  # timm's resnet50d: 25.58 M
    assert supernet.macs(config) == 4_328_824_832  # timm's resnet50d: 4.35 G
    assert supernet.macs(space.largest()) == 7_491_643_904
    assert supernet.params(space.largest()) == 48_105_992


def test_ofa_form(supernet: OFAResNet50Supernet) -> None:
    ofa = {"d": [0, 1, 0, 2, 1], "e": [0.2, 0.25, 0.35] * 6, "w": [0, 2, 1, 1, 0, 2], "r": [160]}
    genes = supernet.canonical(ofa)
    assert genes["stem.depth"] == 0 and genes["s1.width"] == 1 and genes["resolution"] == 160
    assert supernet.canonical(supernet.to_ofa(genes)) == genes
    assert supernet.macs(ofa) == supernet.macs(genes)
    with pytest.raises(InvalidConfigError, match="'e' must be a list of 18"):
        supernet.canonical({**ofa, "e": [0.2] * 17})
    with pytest.raises(InvalidConfigError, match=r"'s0\.width' has value 3"):
        supernet.canonical({**ofa, "w": [0, 0, 3, 0, 0, 0]})


def test_layer_keys_cover_the_space_and_weights_are_needed_to_build() -> None:
    supernet = load_supernet("ofa-resnet50")
    keys = set(supernet.all_layer_keys())
    space = supernet.space
    for config in [space.smallest(), space.largest(), *space.sample(np.random.default_rng(5), 300)]:
        assert set(supernet.layer_keys(config)) <= keys
    with pytest.raises(CheckpointError, match="without a checkpoint"):
        supernet.build_subnet(space.smallest())


def test_accuracy_with_recalibration_on_an_image_folder(
    supernet: OFAResNet50Supernet, tmp_path: Path
) -> None:
    from PIL import Image

    from service.supernets.image_folder import split_source
    from service.supernets.ofa_mbv3 import set_running_statistics

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(2):
            Image.new("RGB", (40 + i, 36), (40 * i, 90, 200)).save(tmp_path / name / f"{i}.png")
    splits = split_source(tmp_path, calibration_images=2)
    with_data = OFAResNet50Supernet(supernet.model, data=splits)
    config = dict(supernet.space.smallest(), resolution=128)
    expected = supernet.build_subnet(config)
    set_running_statistics(expected, [splits.calibration.images(128)])
    got = with_data.build_subnet(config)
    torch.testing.assert_close(
        got.blocks[0].conv2.bn.running_var, expected.blocks[0].conv2.bn.running_var
    )
    (accuracy,) = with_data.evaluate_accuracy([config])
    assert 0.0 <= accuracy <= 100.0
