"""Admission control: a bounded number of requests run at once, a bounded queue waits, and the
rest are answered 503 with `Retry-After` instead of piling up until the server drops connections.

`HWNAS_MAX_CONCURRENT_REQUESTS` requests run at once per process (the database pool and the
thread pool are sized to it, so an admitted request never waits for a connection another waiting
request holds); up to `HWNAS_MAX_QUEUED_REQUESTS` more wait up to `HWNAS_QUEUE_TIMEOUT_S` for a
slot. `/health` is never queued: it does no work, and a liveness probe must answer under load.
"""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Receive, Scope, Send

UNQUEUED_PATHS = frozenset({"/health"})


class ConcurrencyLimit:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_running: int,
        max_queued: int,
        queue_timeout_s: float,
        retry_after_s: int = 1,
    ) -> None:
        self.app = app
        self.max_queued = max_queued
        self.queue_timeout_s = queue_timeout_s
        self.retry_after_s = retry_after_s
        self._slots = asyncio.Semaphore(max_running)
        self._queued = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNQUEUED_PATHS:
            await self.app(scope, receive, send)
            return
        if self._slots.locked() and self._queued >= self.max_queued:
            await self._busy(send, f"more than {self.max_queued} requests are already waiting")
            return
        self._queued += 1
        try:
            async with asyncio.timeout(self.queue_timeout_s):
                await self._slots.acquire()
        except TimeoutError:
            await self._busy(send, f"no request slot freed within {self.queue_timeout_s:g} s")
            return
        finally:
            self._queued -= 1
        try:
            await self.app(scope, receive, send)
        finally:
            self._slots.release()

    async def _busy(self, send: Send, why: str) -> None:
        body = json.dumps(
            {
                "error": "overloaded",
                "detail": f"the server is at capacity ({why}); retry after {self.retry_after_s} s",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(self.retry_after_s).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
