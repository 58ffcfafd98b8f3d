"""Weight-sharing training of the built-in supernet: the sandwich rule with in-place distillation.

As in Once-for-All, the full network is trained alone first (`full_network_epochs`); then each step
trains the largest sub-network on the labels, and the smallest and two random ones on the largest's
soft predictions (the sandwich rule with in-place distillation of BigNAS / AttentiveNAS),
accumulating gradients into one update. A plain CNN of the largest architecture, trained alone for
the same number of epochs with the same data and optimiser, is the baseline its largest sub-network
is compared with.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from service.supernets.digits_data import DigitsSplits, synthesise
from service.supernets.elastic_mbv3 import ElasticMobileNetV3


@dataclass(frozen=True)
class TrainingSettings:
    epochs: int = 80
    epoch_size: int = 4096
    full_network_epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    random_subnets_per_step: int = 2
    label_smoothing: float = 0.1
    seed: int = 0
    threads: int = 2


def _optimizer(model: nn.Module, settings: TrainingSettings) -> torch.optim.Optimizer:
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "kernel_transforms" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1 or "kernel_transforms" in n]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": settings.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=settings.learning_rate,
    )


def _batches(
    splits: DigitsSplits, settings: TrainingSettings, generator: torch.Generator
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    images, labels = synthesise(splits.train, settings.epoch_size, generator)
    return [
        (
            images[i : i + settings.batch_size].contiguous(memory_format=torch.channels_last),
            labels[i : i + settings.batch_size],
        )
        for i in range(0, len(labels), settings.batch_size)
    ]


def _train(
    model: nn.Module,
    splits: DigitsSplits,
    settings: TrainingSettings,
    step: Callable[[torch.Tensor, torch.Tensor, np.random.Generator, int], torch.Tensor],
    log: Callable[[str], None],
) -> float:
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    generator = torch.Generator().manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = _optimizer(model, settings)
    steps_per_epoch = -(-settings.epoch_size // settings.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=settings.learning_rate,
        total_steps=settings.epochs * steps_per_epoch,
        pct_start=0.15,
    )
    started = time.perf_counter()
    for epoch in range(settings.epochs):
        model.train()
        losses = []
        for images, labels in _batches(splits, settings, generator):
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(step(images, labels, rng, epoch)))
            optimizer.step()
            scheduler.step()
        log(
            f"epoch {epoch + 1}/{settings.epochs} loss {np.mean(losses):.3f} "
            f"({time.perf_counter() - started:.0f} s)"
        )
    return time.perf_counter() - started


def train_supernet(
    model: ElasticMobileNetV3,
    splits: DigitsSplits,
    settings: TrainingSettings,
    log: Callable[[str], None] = print,
) -> float:
    """Train in place with the sandwich rule; returns the wall-clock seconds spent."""
    space = model.spec.search_space()

    def step(
        images: torch.Tensor, labels: torch.Tensor, rng: np.random.Generator, epoch: int
    ) -> torch.Tensor:
        logits = model(images, space.largest())
        loss = F.cross_entropy(logits, labels, label_smoothing=settings.label_smoothing)
        loss.backward()
        if epoch < settings.full_network_epochs:
            return loss.detach()
        soft_targets = F.softmax(logits.detach(), dim=1)
        others: list[Mapping[str, Any]] = [space.smallest()]
        others += space.sample(rng, settings.random_subnets_per_step)
        for config in others:
            student = model(images, config)
            F.cross_entropy(student, soft_targets).backward()
        return loss.detach()

    return _train(model, splits, settings, step, log)


def train_plain(
    model: nn.Module,
    splits: DigitsSplits,
    settings: TrainingSettings,
    log: Callable[[str], None] = print,
) -> float:
    """Train a standalone network on the labels with the same data, schedule and optimizer."""

    def step(
        images: torch.Tensor, labels: torch.Tensor, rng: np.random.Generator, epoch: int
    ) -> torch.Tensor:
        loss = F.cross_entropy(model(images), labels, label_smoothing=settings.label_smoothing)
        loss.backward()
        return loss.detach()

    return _train(model, splits, settings, step, log)
