"""`GET /v1/jobs/{id}/pareto` answered before the framework when memory holds the answer.

Dashboards and scripts poll the front. Once the front (`FrontCache`) and the caller's access
(`AuthGate`) are in memory, what a poll still costs is the framework: matching the path against
every route, solving the router's dependencies, the middleware stack. Profiled under load that
was most of the route's CPU, and the route answered at two thirds of the static file's rate
(docs/benchmarks.md, issue 20). This middleware answers such a poll itself, with the status,
headers and body the route gives (`tests/test_read_path.py` compares them). Anything it is not
sure of goes to the app untouched, which decides: a front not kept or due for comparison (it
claims no refresh, so the route's request does), `Cache-Control: no-cache`, a caller the gate
cannot admit from memory, a request body, any other path or method.

It sits outside the concurrency limit: like `/health` it runs no thread and no query, so an
overloaded process still answers polls it can answer from memory.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.auth import ScopeGuard
from service.auth.gate import AuthGate
from service.jobs.fronts import FrontCache, ServedFront, etag_matches

_PARETO_PATH = re.compile(r"/v1/jobs/([1-9][0-9]{0,9})/pareto")
_READ = frozenset({b"authorization", b"cache-control", b"if-none-match"})
_BODY = frozenset({b"content-length", b"transfer-encoding"})


class FrontFromMemory:
    def __init__(self, app: ASGIApp, *, guard: ScopeGuard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            matched = _PARETO_PATH.fullmatch(scope["path"])
            if matched is not None and await self._answered(scope, int(matched[1]), send):
                return
        await self.app(scope, receive, send)

    async def _answered(self, scope: Scope, job_id: int, send: Send) -> bool:
        state = scope["app"].state
        cache: FrontCache | None = getattr(state, "front_cache", None)
        gate: AuthGate | None = getattr(state, "auth_gate", None)
        if cache is None or gate is None:  # not started yet
            return False
        headers: dict[bytes, str] = {}
        for name, value in scope["headers"]:
            if name in _BODY and value != b"0":
                return False
            if name in _READ:
                headers.setdefault(name, value.decode("latin-1"))  # the first, as Starlette
        if "no-cache" in headers.get(b"cache-control", "").lower():
            return False
        if not self.guard.admits_from_memory(gate, "GET", headers.get(b"authorization")):
            return False
        front = cache.from_memory(job_id, claim_refresh=False)
        if front is None:
            return False
        wanted = headers.get(b"if-none-match")
        await _send_front(
            send, front, not_modified=wanted is not None and etag_matches(wanted, front.etag)
        )
        return True


async def _send_front(send: Send, front: ServedFront, not_modified: bool) -> None:
    """The route's answer: `ETag` and `Cache-Control: no-cache`, then the JSON body or a 304."""
    headers = [(b"etag", front.etag.encode("latin-1")), (b"cache-control", b"no-cache")]
    if not_modified:
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    headers += [
        (b"content-length", str(len(front.body)).encode()),
        (b"content-type", b"application/json"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": front.body})
