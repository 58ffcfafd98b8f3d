"""422 for text neither database can store: NUL characters (PostgreSQL's text and JSONB refuse
them) and unpaired surrogates (not UTF-8), in a query string or anywhere in a JSON body.

Checked once, here, before routing: the alternative is a constraint on every string field of
every request model, and the database error (a 500) for each one forgotten. Latency-table
uploads (their own size limit, not only JSON) check what they parsed with `first_unstorable`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qsl

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

RULE = "text may not contain NUL (\\u0000) or unpaired surrogate (\\ud800-\\udfff) characters"


class StorableText:
    """The body is read here (the size limit runs before this) and replayed to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/").endswith("/latency-tables"):
            await self.app(scope, receive, send)
            return
        where = _bad_query_parameter(scope.get("query_string", b""))
        if where is None and _is_json(scope):
            body, receive = await _buffered(receive)
            where = _bad_json_text(body)
        if where is not None:
            content = {"error": "invalid_request", "detail": f"{where}: {RULE}"}
            await JSONResponse(status_code=422, content=content)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _is_json(scope: Scope) -> bool:
    content_type = dict(scope["headers"]).get(b"content-type", b"").lower()
    return content_type.startswith(b"application/json") or b"+json" in content_type


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body, and a `receive` that gives it to the app as one message."""
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":  # the client went away: let the app see it
            return b"", _replay(message)
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    return body, _replay({"type": "http.request", "body": body, "more_body": False})


def _replay(first: Message) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return first

    return receive


def _bad_query_parameter(query_string: bytes) -> str | None:
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if not _storable(name) or not _storable(value):
            return f"query.{name[:80]!s}"
    return None


def _bad_json_text(body: bytes) -> str | None:
    """Where the first unstorable string of a JSON body is; None for a malformed body too (the
    app reports that)."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return first_unstorable(document, "body")


def first_unstorable(document: object, root: str) -> str | None:
    """Where the first string of `document` (JSON-like) that no database stores is."""
    for where, text in _strings(document, root):
        if not _storable(text):
            return where
    return None


def _strings(document: object, root: str) -> Iterator[tuple[str, str]]:
    """Every string of a parsed JSON document (keys too) with its location, without recursion."""
    stack: list[tuple[str, object]] = [(root, document)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            yield where, value
        elif isinstance(value, dict):
            for key, item in value.items():
                key = str(key)
                inside = f"{where}.{key[:80]}" if _storable(key) else where
                yield inside, key
                stack.append((inside, item))
        elif isinstance(value, list):
            stack.extend((f"{where}[{index}]", item) for index, item in enumerate(value))


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
