"""Domain errors: each carries its HTTP status and a stable code; `app` renders them all alike."""

from __future__ import annotations


class DomainError(Exception):
    """An error the API reports as `{"error": code, "detail": text}` with `status_code`."""

    status_code = 400
    code = "bad_request"

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


class LostLeaseError(RuntimeError):
    """The worker no longer owns the job (reaped, cancelled or finished elsewhere)."""
