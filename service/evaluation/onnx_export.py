"""A torch sub-network as ONNX bytes, the form every latency measurement and download takes."""

from __future__ import annotations

import io
import warnings

import torch
from torch import nn


def export_onnx(module: nn.Module, example_input: torch.Tensor) -> bytes:
    """Export an eval-mode module to ONNX (opset 17) with a fixed input shape."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (example_input,),
            buffer,  # type: ignore[arg-type]  # file-like objects are accepted
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["output"],
        )
    return buffer.getvalue()
