"""ONNX files of sub-networks, exported once per (supernet, network, batch size) and kept."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from service.catalog.supernets import supernet_model
from service.db.models import Supernet
from service.evaluation.validation import subnet_onnx


def subnet_onnx_file(
    artifact_dir: Path,
    supernet: Supernet,
    config: Mapping[str, Any],
    config_hash: str,
    batch_size: int,
) -> Path:
    """The sub-network with the supernet's weights as ONNX at `batch_size`; exported on first
    use and written atomically, so concurrent readers never see half a file."""
    path = artifact_dir / "onnx" / str(supernet.id) / f"{config_hash}-b{batch_size}.onnx"
    if path.is_file():
        return path
    data = subnet_onnx(supernet_model(supernet), config, batch_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=path.parent, suffix=".partial")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(partial, path)
    return path
