"""The dashboard's own files, served from memory: read once at start-up, sent with an ETag.

Starlette's `StaticFiles` stats and reads the file in the thread pool on every request; on a
2-core host under load those trips cost far more than the bytes (`docs/benchmarks.md`, issue
20). These files ship with the package and never change while the server runs (~0.5 MB, most of
it plotly), so they are kept as bytes; `If-None-Match` with the current tag gets a 304.
"""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from service.jobs.fronts import etag_matches


class PackagedFiles:
    """An ASGI app for a `Mount`: GET/HEAD of a file under `directory` as it was at start-up."""

    def __init__(self, directory: Path) -> None:
        self._files: dict[str, tuple[bytes, str, str]] = {}
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                body = path.read_bytes()
                media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                etag = f'"{hashlib.blake2s(body, digest_size=8).hexdigest()}"'
                self._files[path.relative_to(directory).as_posix()] = (body, media_type, etag)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        if scope["method"] not in ("GET", "HEAD"):
            answer: Response = PlainTextResponse(
                "Method Not Allowed", status_code=405, headers={"Allow": "GET, HEAD"}
            )
            await answer(scope, receive, send)
            return
        name = scope["path"].removeprefix(scope.get("root_path", "")).lstrip("/")
        found = self._files.get(name)
        if found is None:
            await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)
            return
        body, media_type, etag = found
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        wanted = Headers(scope=scope).get("if-none-match")
        if wanted is not None and etag_matches(wanted, etag):
            answer = Response(status_code=304, headers=headers)
        elif scope["method"] == "HEAD":
            answer = Response(status_code=200, media_type=media_type, headers=headers)
            answer.headers["Content-Length"] = str(len(body))
        else:
            answer = Response(body, media_type=media_type, headers=headers)
        await answer(scope, receive, send)
