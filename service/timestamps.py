"""Timestamps as the API states them: UTC, serialised with their zone (RFC 3339 `date-time`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator


def as_utc(value: datetime) -> datetime:
    """Database times are UTC; SQLite hands them back without a zone."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# e.g. 2026-12-02T15:00:00Z
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]
