"""A tiny elastic-width MLP family, shipped as a separate package to test entry-point discovery."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from service.supernets.space import Config, Gene, SearchSpace

WIDTHS = (4, 8, 16)
IN_FEATURES, OUT_FEATURES = 6, 3


class ToyMlpSupernet:
    family = "toy-mlp"
    dataset = "toy-random"

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.space = SearchSpace((Gene("width", WIDTHS), Gene("activation", ("relu", "tanh"))))
        self.hidden = nn.Linear(IN_FEATURES, max(WIDTHS))
        self.out = nn.Linear(max(WIDTHS), OUT_FEATURES)
        self.inputs = torch.randn(64, IN_FEATURES)
        self.labels = torch.randint(0, OUT_FEATURES, (64,))

    def canonical(self, config: Mapping[str, Any]) -> Config:
        return self.space.canonical(config)

    def build_subnet(self, config: Mapping[str, Any]) -> nn.Module:
        width = int(self.canonical(config)["width"])
        hidden, out = nn.Linear(IN_FEATURES, width), nn.Linear(width, OUT_FEATURES)
        with torch.no_grad():
            hidden.weight.copy_(self.hidden.weight[:width])
            hidden.bias.copy_(self.hidden.bias[:width])
            out.weight.copy_(self.out.weight[:, :width])
            out.bias.copy_(self.out.bias)
        act = nn.ReLU() if config["activation"] == "relu" else nn.Tanh()
        return nn.Sequential(hidden, act, out).eval()

    def example_input(self, batch: int, config: Mapping[str, Any] | None = None) -> torch.Tensor:
        return torch.randn(batch, IN_FEATURES)

    def layer_keys(self, config: Mapping[str, Any]) -> list[str]:
        width = self.canonical(config)["width"]
        return [f"Linear-in:{IN_FEATURES}-out:{width}", f"Linear-in:{width}-out:{OUT_FEATURES}"]

    def macs(self, config: Mapping[str, Any]) -> int:
        width = int(self.canonical(config)["width"])
        return IN_FEATURES * width + width * OUT_FEATURES

    def params(self, config: Mapping[str, Any]) -> int:
        return self.macs(config) + int(self.canonical(config)["width"]) + OUT_FEATURES

    def evaluate_accuracy(self, configs: Sequence[Mapping[str, Any]]) -> list[float]:
        results = []
        for config in configs:
            with torch.no_grad():
                predictions = self.build_subnet(config)(self.inputs).argmax(1)
            results.append(100.0 * float((predictions == self.labels).float().mean()))
        return results


def make_supernet(checkpoint: str | None) -> ToyMlpSupernet:
    return ToyMlpSupernet()
