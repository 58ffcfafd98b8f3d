"""Every route of the app with what it needs, and the status each kind of caller gets: the table
of docs/security.md (`scripts/security_table.py` writes it; tests check it and call every cell)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Mount, Route

from service.api.auth import route_requirement
from service.auth.tokens import grants

# The callers of the table, by the scope of the token they present ("none": no token).
CALLERS = ("none", "read", "submit", "admin", "agent:other-device", "agent:own-device")
ALLOWED = "ok"  # neither 401 nor 403: the route's own answer (200, 404, 422, …)


@dataclass(frozen=True)
class RouteScope:
    method: str
    path: str
    needs: str  # public | read | submit | admin | agent | any agent


def route_scopes(app: FastAPI) -> list[RouteScope]:
    """One row per method and path the app answers (HEAD aside), in the app's order."""
    rows = []
    # Included routers are resolved lazily (FastAPI 0.165); this iterates their effective routes,
    # with the dependencies of the router they were included with, as the OpenAPI document does.
    for context in iter_route_contexts(app.routes):
        route, path, methods = context.original_route, str(context.path), context.methods or ()
        if isinstance(route, APIRoute):
            for method in methods:
                needs = route_requirement(context.dependencies, method)
                if needs == "agent" and "{" not in path:  # about the token's own device only
                    needs = "any agent"
                rows.append(RouteScope(method, path, needs))
        elif isinstance(route, Mount):
            rows.append(RouteScope("GET", path + "/{file}", "public"))
        elif isinstance(route, Route):
            rows += [RouteScope(m, path, "public") for m in methods if m != "HEAD"]
    return sorted(rows, key=lambda r: (not r.path.startswith("/v1"), r.path, r.method))


def expected_status(needs: str, caller: str) -> str:
    """`401`, `403` or `ok` for `caller` (one of CALLERS) on a route that needs `needs`, with
    authentication on."""
    if needs == "public":
        return ALLOWED
    if caller == "none":
        return "401"
    if needs == "agent":
        return ALLOWED if caller == "agent:own-device" else "403"
    if needs == "any agent":
        return ALLOWED if caller.startswith("agent:") else "403"
    return ALLOWED if grants(caller, needs) else "403"


def security_table(app: FastAPI) -> str:
    """The Markdown table: a row per route, a column per caller."""
    header = ["Method", "Path", "Needs", *CALLERS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in route_scopes(app):
        cells = [row.method, f"`{row.path}`", row.needs]
        cells += [expected_status(row.needs, caller) for caller in CALLERS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


TABLE_START, TABLE_END = "<!-- route-table:start -->\n", "<!-- route-table:end -->"


def with_security_table(text: str, app: FastAPI) -> str:
    """`text` (docs/security.md) with the table between its markers written anew."""
    head, start, rest = text.partition(TABLE_START)
    _, end, tail = rest.partition(TABLE_END)
    if not start or not end:
        raise ValueError(f"the text lacks the markers {TABLE_START.strip()} … {TABLE_END}")
    return head + TABLE_START + security_table(app) + TABLE_END + tail
