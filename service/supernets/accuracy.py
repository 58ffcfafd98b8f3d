"""Top-1 accuracy of a classifier, the figure every family's `evaluate_accuracy` reports."""

from __future__ import annotations

import torch
from torch import nn


def top1_accuracy(
    module: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, batch: int = 1000
) -> float:
    """Top-1 accuracy in percent of `module` (put in eval mode) on `inputs`, in batches."""
    module.eval()
    with torch.inference_mode():
        correct = sum(
            int((module(inputs[i : i + batch]).argmax(1) == labels[i : i + batch]).sum())
            for i in range(0, len(labels), batch)
        )
    return 100.0 * correct / max(1, len(labels))
