"""Pydantic request and response types of the HTTP API (ORM rows never leave the service layer)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class ErrorOut(BaseModel):
    error: str
    detail: str


class HealthOut(BaseModel):
    status: Literal["ok"]
    database: str
    schema_revision: str | None
