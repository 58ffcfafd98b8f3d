"""The Supernet protocol: what a supernet family provides to hwnas.

Third-party families implement this protocol and register a factory in the `hwnas.supernets`
entry-point group (see `service.supernets.registry`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from service.supernets.space import Config, SearchSpace


@runtime_checkable
class Supernet(Protocol):
    """One set of weights holding many sub-networks."""

    family: str
    dataset: str
    space: SearchSpace

    def canonical(self, config: Mapping[str, Any]) -> Config:
        """Validate `config` and reset genes that do not affect the network."""
        ...

    def build_subnet(self, config: Mapping[str, Any]) -> nn.Module:
        """A standalone module (eval mode) with weights taken from the supernet."""
        ...

    def example_input(self, batch: int, config: Mapping[str, Any] | None = None) -> torch.Tensor:
        """A tensor of the input shape the sub-network of `config` takes (the largest network's
        without a config), with `batch` rows: families with a resolution gene differ per config."""
        ...

    def layer_keys(self, config: Mapping[str, Any]) -> list[str]:
        """The latency-table keys of the ops the sub-network runs, in execution order."""
        ...

    def macs(self, config: Mapping[str, Any]) -> int:
        """Exact multiply-accumulates of one forward pass on one input (convolutions, linear)."""
        ...

    def params(self, config: Mapping[str, Any]) -> int:
        """Exact number of trainable parameters of the built sub-network."""
        ...

    def evaluate_accuracy(self, configs: Sequence[Mapping[str, Any]]) -> list[float]:
        """Top-1 accuracy in percent (0–100) of each sub-network on the held-out split."""
        ...
