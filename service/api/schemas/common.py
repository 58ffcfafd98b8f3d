"""Pydantic request and response types of the HTTP API (ORM rows never leave the service layer)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

# A registered name: a slug that starts with a letter or digit (never `.` or `..`). Names are
# unique ignoring case.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
# Free text a request carries (descriptor values, notes); long enough for any real use.
ShortText = Annotated[str, StringConstraints(max_length=1000)]
Key = Annotated[str, StringConstraints(min_length=1, max_length=200)]
FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]
# A JSON scalar of a free-form descriptor: strict types, finite numbers, bounded strings.
DescriptorValue = Annotated[
    bool | int | FiniteFloat | ShortText | None, Field(union_mode="left_to_right")
]


class ErrorOut(BaseModel):
    error: str
    detail: str


class HealthOut(BaseModel):
    status: Literal["ok"]
    database: str
    schema_revision: str | None
