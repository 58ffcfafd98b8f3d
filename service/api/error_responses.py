"""The error responses routes declare in the OpenAPI document, all in the `ErrorOut` form.

`app.py` includes every router with `COMMON` (422, 500 and 503 are possible anywhere); a route adds
what it can also answer: `errors(404)` where it looks an id up, 409 where the stored state can
refuse it, 413 where it takes a body. A 405 is never declared per operation (an operation is one
method): any undeclared method of a path gets 405 with an `Allow` header, as RFC 9110 says.
"""

from __future__ import annotations

from typing import Any

from service.api.schemas.common import ErrorOut

_DESCRIPTIONS = {
    401: "No valid token: the detail says how to send one",
    403: "The token is valid but not for this resource",
    404: "An id or name in the path names nothing stored",
    409: "The stored state refuses the request (a taken name, a finished job, a lost lease)",
    413: "The body is larger than the server accepts (the detail names the setting)",
    422: "The request is invalid: the detail names each value to fix; nothing was stored",
    500: "An unexpected error, logged by the server; the detail shows no internals",
    503: "At capacity (every request slot busy and the queue full, or a wait past its "
    "timeout): retry after the Retry-After header's seconds",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route or router for these error statuses."""
    return {
        status: {"model": ErrorOut, "description": _DESCRIPTIONS[status]} for status in statuses
    }


COMMON = errors(422, 500, 503)
