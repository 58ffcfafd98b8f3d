"""Weight-sharing training of `bert-digits`: the sandwich rule with in-place distillation.

As `service/supernets/training.py` trains `mbv3-digits`: the full network alone first
(`full_network_epochs`), then every step trains the largest sub-network on the labels and the
smallest and `random_subnets_per_step` random ones on the largest's soft predictions (BigNAS /
AttentiveNAS), accumulating the gradients into one AdamW update; one-cycle learning rate.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from service.supernets.bert_digits import (
    DEFAULT_CHECKPOINT,
    FAMILY,
    ElasticBertSupernet,
)
from service.supernets.bert_digits_data import DATASET_NAME, RowDigitsSplits, distort, load_splits
from service.supernets.checksum import manifest_path, sha256_of
from service.supernets.elastic_bert import Bert, BertSpec, Dims


@dataclass(frozen=True)
class BertTrainingSettings:
    epochs: int = 22
    epoch_size: int = 4096
    full_network_epochs: int = 4
    batch_size: int = 128
    learning_rate: float = 3e-3
    weight_decay: float = 1e-2
    random_subnets_per_step: int = 2
    label_smoothing: float = 0.1
    seed: int = 0
    threads: int = 1


def _optimizer(model: nn.Module, settings: BertTrainingSettings) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": settings.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=settings.learning_rate,
    )


def initialise(model: Bert, seed: int) -> None:
    """BERT's initialisation: normal(0, 0.02) weights, zero biases, unit LayerNorm."""
    torch.manual_seed(seed)
    for name, param in model.named_parameters():
        if name.endswith("LayerNorm.weight"):
            nn.init.ones_(param)
        elif name.endswith("bias"):
            nn.init.zeros_(param)
        else:
            nn.init.normal_(param, std=0.02)


def train_bert_supernet(
    model: Bert,
    splits: RowDigitsSplits,
    settings: BertTrainingSettings,
    log: Callable[[str], None] = print,
) -> float:
    """Train in place with the sandwich rule; returns the wall-clock seconds spent."""
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    generator = torch.Generator().manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    space = model.spec.search_space()
    largest, smallest = Dims.of(space.largest()), Dims.of(space.smallest())
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
        images, labels = distort(splits.train, settings.epoch_size, generator)
        losses = []
        for i in range(0, len(labels), settings.batch_size):
            x, y = images[i : i + settings.batch_size], labels[i : i + settings.batch_size]
            optimizer.zero_grad(set_to_none=True)
            logits = model(x, largest)
            loss = F.cross_entropy(logits, y, label_smoothing=settings.label_smoothing)
            loss.backward()
            if epoch >= settings.full_network_epochs:
                soft = F.softmax(logits.detach(), dim=1)
                others = [smallest]
                others += [Dims.of(c) for c in space.sample(rng, settings.random_subnets_per_step)]
                for dims in others:
                    F.cross_entropy(model(x, dims), soft).backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
        log(
            f"epoch {epoch + 1}/{settings.epochs} loss {np.mean(losses):.3f} "
            f"({time.perf_counter() - started:.0f} s)"
        )
    return time.perf_counter() - started


def train_and_save(
    settings: BertTrainingSettings,
    output: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train `bert-digits` from scratch, save the state dict and its manifest (sha256, settings,
    time, held-out accuracy of the smallest and largest sub-networks); returns the manifest."""
    output = output or DEFAULT_CHECKPOINT
    output.parent.mkdir(parents=True, exist_ok=True)
    splits = load_splits()
    model = Bert(BertSpec())
    initialise(model, settings.seed)
    seconds = train_bert_supernet(model, splits, settings, log)
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, output)
    supernet = ElasticBertSupernet(
        model.eval(), held_out=(splits.held_out_images, splits.held_out_labels)
    )
    smallest, largest = supernet.evaluate_accuracy(
        [supernet.space.smallest(), supernet.space.largest()]
    )
    manifest: dict[str, Any] = {
        "family": FAMILY,
        "dataset": DATASET_NAME,
        "sha256": sha256_of(output),
        "bytes": output.stat().st_size,
        "method": f"full network alone for {settings.full_network_epochs} epochs, then the "
        "sandwich rule with in-place distillation (largest on labels; smallest and "
        f"{settings.random_subnets_per_step} random sub-networks on the largest's soft labels)",
        "settings": asdict(settings),
        "train_seconds": round(seconds, 1),
        "threads": settings.threads,
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "held_out_accuracy": {"smallest": smallest, "largest": largest},
    }
    manifest_path(output).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
