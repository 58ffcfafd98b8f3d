"""Checksums of checkpoint files, and the manifest that records a shipped checkpoint's sha256."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, or does not fit its family."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_path(checkpoint: Path) -> Path:
    return checkpoint.with_suffix(".json")


def verified_sha256(path: Path, train_command: str) -> str:
    """The checkpoint's sha256, checked against the manifest beside it when there is one;
    `CheckpointError` naming `train_command` when the file is missing or was replaced."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; run `{train_command}`")
    digest = sha256_of(path)
    manifest = manifest_path(path)
    if manifest.is_file():
        expected = json.loads(manifest.read_text())["sha256"]
        if digest != expected:
            raise CheckpointError(
                f"checkpoint {path} has sha256 {digest}, but {manifest.name} records {expected}; "
                f"the file is corrupt or was replaced — retrain with `{train_command}`"
            )
    return digest
