"""Client-given checkpoints: a name inside the configured checkpoint directory, nothing else.

A checkpoint path from a request is never opened before it is known to be a regular file inside
`HWNAS_CHECKPOINT_DIR` that is not the database: opening the SQLite file through a second handle
releases the server's POSIX locks on it, and a worker closing its connection afterwards deletes
the write-ahead log under the server (every later write lost).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy.engine import URL

from service.errors import InvalidInputError

# A name, or a short relative path below the directory; well under any file system's PATH_MAX.
MAX_CHECKPOINT_NAME = 1024
_SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")
_ZIP_MAGIC = b"PK\x03\x04"


class InvalidCheckpointError(InvalidInputError):
    code = "invalid_checkpoint"


def database_files(url: URL) -> list[Path]:
    """The files of a SQLite database (main, -wal, -shm, -journal); none for other databases."""
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return []
    main = Path(url.database).resolve()
    return [main.with_name(main.name + suffix) for suffix in _SQLITE_COMPANIONS]


def resolve_checkpoint(
    given: str, checkpoint_dir: Path, forbidden: Iterable[Path], max_bytes: int
) -> Path:
    """The regular file `given` names inside `checkpoint_dir`; 422 saying why otherwise.

    Only metadata is read here (`stat`), never the file's contents.
    """
    where = f"the checkpoint directory {str(checkpoint_dir)!r} (HWNAS_CHECKPOINT_DIR)"
    if len(given) > MAX_CHECKPOINT_NAME:
        raise InvalidCheckpointError(
            f"checkpoint name is {len(given)} characters long; at most {MAX_CHECKPOINT_NAME} "
            f"(a file name inside {where})"
        )
    if not given.strip() or "\x00" in given:
        raise InvalidCheckpointError(f"checkpoint name must be a file name inside {where}")
    root = checkpoint_dir.resolve()
    try:
        path = (root / given).resolve()
    except (OSError, RuntimeError) as exc:  # symlink loops, names the OS refuses
        raise InvalidCheckpointError(
            f"checkpoint {given[:200]!r} cannot be resolved: {exc}"
        ) from exc
    if not path.is_relative_to(root) or path == root:
        raise InvalidCheckpointError(
            f"checkpoint {given[:200]!r} resolves outside {where}; copy the file there and "
            "give its name"
        )
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InvalidCheckpointError(
            f"checkpoint {given[:200]!r} is not a file in {where}"
        ) from None
    except OSError as exc:
        raise InvalidCheckpointError(
            f"checkpoint {given[:200]!r} cannot be read: {exc.strerror}"
        ) from exc
    for db_file in forbidden:
        if path == db_file or _same_file(info, db_file):
            raise InvalidCheckpointError(
                f"checkpoint {given[:200]!r} is the service's own database file; "
                f"give a checkpoint file inside {where}"
            )
    if not stat.S_ISREG(info.st_mode):
        raise InvalidCheckpointError(f"checkpoint {given[:200]!r} is not a regular file in {where}")
    if info.st_size > max_bytes:
        raise InvalidCheckpointError(
            f"checkpoint {given[:200]!r} is {info.st_size} bytes; checkpoints are limited to "
            f"{max_bytes} bytes (HWNAS_MAX_CHECKPOINT_BYTES)"
        )
    return path


def _same_file(info: os.stat_result, other: Path) -> bool:
    """Hard links too: same device and inode (stat only, nothing opened)."""
    try:
        theirs = other.stat()
    except OSError:
        return False
    return (info.st_dev, info.st_ino) == (theirs.st_dev, theirs.st_ino)


def load_failure(family: str, name: str, exc: BaseException) -> InvalidCheckpointError:
    """A 422 saying what was wrong with a checkpoint the family could not load."""
    text = str(exc).strip() or type(exc).__name__
    lowered = text.lower()
    if "size mismatch" in lowered:
        what = "its tensor shapes do not match the family's network"
    elif "missing key" in lowered or "unexpected key" in lowered:
        what = "its keys do not match the family's network"
    elif type(exc).__name__ == "UnpicklingError" or any(
        mark in lowered
        for mark in ("magic number", "zip archive", "weights only load", "pickle", "eof")
    ):
        what = "it is not a torch checkpoint (torch.load with weights_only=True refused it)"
    elif isinstance(exc, AttributeError | TypeError):
        what = "it does not hold a state dict of the family's network"
    else:
        what = "the family could not load it"
    if len(text) > 600:
        text = text[:600] + "…"
    return InvalidCheckpointError(f"checkpoint {name[:200]!r} of family {family!r}: {what}: {text}")


def check_weights_only(path: Path, family: str, name: str) -> None:
    """422 unless `torch.load(weights_only=True)` reads the file as a dict of tensors (a state
    dict, or one under "state_dict"): an upload is never unpickled any other way, whatever its
    family's loader does next."""
    import torch

    with path.open("rb") as handle:
        head = handle.read(4)
    if not head.startswith((_ZIP_MAGIC, b"\x80")):
        what = "is empty" if not head else f"starts with {head!r}"
        raise InvalidCheckpointError(
            f"checkpoint {name[:200]!r} of family {family!r}: it is not a torch checkpoint: it "
            f"{what}, where torch.save writes a zip archive (or, before torch 1.6, a pickle)"
        )
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file it cannot read
        raise load_failure(family, name, exc) from exc
    state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else loaded
    if not isinstance(state, dict) or not state:
        raise InvalidCheckpointError(
            f"checkpoint {name[:200]!r} of family {family!r} holds {type(loaded).__name__}, not "
            "a state dict (torch.save(model.state_dict(), file), or {'state_dict': …})"
        )
    others = sorted(str(k) for k, v in state.items() if not isinstance(v, torch.Tensor))
    if others:
        raise InvalidCheckpointError(
            f"checkpoint {name[:200]!r} of family {family!r}: its state dict holds values that "
            f"are not tensors under {others[:10]} ({len(others)} keys)"
        )


def keep_upload(received: Path, directory: Path, sha256: str) -> tuple[Path, bool]:
    """Move an uploaded file to `<sha256>.pt` in `directory`; (path, whether it is new). The
    same bytes uploaded twice are kept once."""
    target = directory / f"{sha256}.pt"
    if target.exists():
        received.unlink(missing_ok=True)
        return target.resolve(), False
    os.replace(received, target)
    return target.resolve(), True
