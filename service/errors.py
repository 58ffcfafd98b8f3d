"""Domain errors: each carries its HTTP status and a stable code; `app` renders them all alike."""

from __future__ import annotations


class DomainError(Exception):
    """An error the API reports as `{"error": code, "detail": text}` with `status_code`."""

    status_code = 400
    code = "bad_request"
    headers: dict[str, str] = {}  # noqa: RUF012  (read-only: sent with the error)

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFoundError(DomainError):
    status_code = 404
    code = "not_found"


class ConflictError(DomainError):
    status_code = 409
    code = "conflict"


class InvalidInputError(DomainError):
    status_code = 422
    code = "invalid_input"


class UnauthorizedError(DomainError):
    """No usable bearer token: none sent, unknown, expired or revoked."""

    status_code = 401
    code = "unauthorized"
    headers = {"WWW-Authenticate": "Bearer"}  # noqa: RUF012


class ForbiddenError(DomainError):
    """A usable token whose scope does not cover this route."""

    status_code = 403
    code = "forbidden"


class LostLeaseError(RuntimeError):
    """The worker no longer owns the job (reaped, cancelled or finished elsewhere)."""
