"""The multipart form of `POST /v1/supernets`: text fields, and the `checkpoint` file streamed to
disk as it arrives (never whole in memory), counted against the size limit and hashed on the way.

Starlette's own form parser reads the whole body into a spooled file before the endpoint runs, so
an oversized upload would be received in full before being refused; this one stops at the limit.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import anyio.to_thread
from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from service.errors import DomainError, InvalidInputError

FILE_FIELD = "checkpoint"


class CheckpointTooLargeError(DomainError):
    status_code = 413
    code = "checkpoint_too_large"


class InvalidFormError(InvalidInputError):
    code = "invalid_request"


@dataclass
class ReceivedForm:
    """Text fields, and where the checkpoint was written (a temporary file; None if not sent)."""

    fields: dict[str, str] = field(default_factory=dict)
    checkpoint: Path | None = None
    sha256: str | None = None
    size: int = 0
    filename: str | None = None

    def discard(self) -> None:
        if self.checkpoint is not None:
            self.checkpoint.unlink(missing_ok=True)
            self.checkpoint = None


class _FormReader:
    """python-multipart callbacks: field text kept (bounded), file bytes handed to `pending`."""

    def __init__(self, form: ReceivedForm, max_file_bytes: int, max_field_bytes: int) -> None:
        self.form, self.max_file_bytes, self.max_field_bytes = form, max_file_bytes, max_field_bytes
        self.header_name, self.header_value = b"", b""
        self.disposition = b""
        self.name: str | None = None
        self.is_file = False
        self.text = bytearray()
        self.field_bytes = 0
        self.pending: list[bytes] = []
        self.digest = hashlib.sha256()

    def on_part_begin(self) -> None:
        self.disposition, self.name, self.is_file, self.text = b"", None, False, bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        if self.header_name.lower() == b"content-disposition":
            self.disposition = self.header_value
        self.header_name, self.header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.disposition)
        if b"name" not in options:
            raise InvalidFormError("every multipart part needs a Content-Disposition name")
        self.name = options[b"name"].decode("utf-8", "replace")
        self.is_file = b"filename" in options
        if self.is_file:
            if self.name != FILE_FIELD:
                raise InvalidFormError(
                    f"file field {self.name[:100]!r} is not accepted; send the checkpoint as "
                    f"the file field {FILE_FIELD!r}"
                )
            if self.form.filename is not None:
                raise InvalidFormError(f"send one {FILE_FIELD!r} file, not several")
            self.form.filename = options[b"filename"].decode("utf-8", "replace")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self.is_file:
            self.form.size += len(chunk)
            if self.form.size > self.max_file_bytes:
                raise CheckpointTooLargeError(
                    f"checkpoint uploads are limited to {self.max_file_bytes} bytes "
                    "(HWNAS_MAX_CHECKPOINT_BYTES)"
                )
            self.digest.update(chunk)
            self.pending.append(chunk)
            return
        self.field_bytes += len(chunk)
        if self.field_bytes > self.max_field_bytes:
            raise CheckpointTooLargeError(
                f"the form's text fields are limited to {self.max_field_bytes} bytes together "
                "(HWNAS_MAX_REQUEST_BYTES)"
            )
        self.text.extend(chunk)

    def on_part_end(self) -> None:
        if not self.is_file and self.name is not None:
            if self.name in self.form.fields:
                raise InvalidFormError(f"form field {self.name[:100]!r} is given twice")
            self.form.fields[self.name] = self.text.decode("utf-8", "replace")


async def receive_form(
    request: Request, directory: Path, max_file_bytes: int, max_field_bytes: int
) -> ReceivedForm:
    """Read the multipart body; the file goes to a temporary file in `directory` (removed again
    on any error). 413 past either limit, 422 for a body that is not a well-formed form."""
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidFormError("multipart/form-data without a boundary in its Content-Type")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_file_bytes + max_field_bytes:
        raise CheckpointTooLargeError(
            f"the upload declares {declared} bytes; checkpoints are limited to {max_file_bytes} "
            "bytes (HWNAS_MAX_CHECKPOINT_BYTES)"
        )
    form = ReceivedForm()
    reader = _FormReader(form, max_file_bytes, max_field_bytes)
    parser = MultipartParser(boundary, _callbacks(reader))  # type: ignore[arg-type]
    directory.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix=".upload-", suffix=".part", dir=directory)
    form.checkpoint = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as sink:
            async for chunk in request.stream():
                parser.write(chunk)
                await _flush(reader, sink)
            parser.finalize()
            await _flush(reader, sink)
    except MultipartParseError as exc:
        form.discard()
        raise InvalidFormError(f"the multipart body could not be parsed: {exc}") from exc
    except BaseException:
        form.discard()
        raise
    if form.filename is None:
        form.discard()
    else:
        form.sha256 = reader.digest.hexdigest()
    return form


async def _flush(reader: _FormReader, sink: IO[bytes]) -> None:
    """Write what arrived off the event loop (a disk write may block)."""
    if reader.pending:
        data = b"".join(reader.pending)
        reader.pending.clear()
        await anyio.to_thread.run_sync(sink.write, data)


def _callbacks(reader: _FormReader) -> dict[str, object]:
    return {
        "on_part_begin": reader.on_part_begin,
        "on_part_data": reader.on_part_data,
        "on_part_end": reader.on_part_end,
        "on_header_field": reader.on_header_field,
        "on_header_value": reader.on_header_value,
        "on_header_end": reader.on_header_end,
        "on_headers_finished": reader.on_headers_finished,
    }
