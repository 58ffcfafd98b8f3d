"""Bodies of /v1/tokens: a token's listing never holds its secret; creation returns it once."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from service.timestamps import UtcDatetime


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: str = Field(
        min_length=1, max_length=120, description="admin, submit, read or agent:DEVICE"
    )
    name: str | None = Field(default=None, min_length=1, max_length=100)
    expires_at: UtcDatetime | None = Field(default=None, description="UTC unless it says")


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    scope: str
    prefix: str = Field(description="The token's first characters, to recognise it; not secret")
    created_at: UtcDatetime
    expires_at: UtcDatetime | None
    revoked_at: UtcDatetime | None
    last_used_at: UtcDatetime | None


class NewTokenOut(TokenOut):
    token: str = Field(description="The secret: shown in this answer only, never again")
