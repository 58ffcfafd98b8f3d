"""Service settings from the environment (prefix `HWNAS_`), validated once at start-up."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# A device agent's bearer token: long enough not to be guessed, printable ASCII without spaces
# or the separators of HWNAS_AGENT_TOKENS.
AGENT_TOKEN_PATTERN = r"^[!-+\--<>-~]{16,200}$"


class Settings(BaseSettings):
    """Where data lives, which database to use, and how workers pace themselves."""

    # hide_input_in_errors: a refused setting never prints the tokens beside it.
    model_config = SettingsConfigDict(
        env_prefix="HWNAS_", extra="ignore", hide_input_in_errors=True
    )

    data_dir: Path = Path("./data")
    database_url: str | None = None
    # Client-given checkpoints are names inside this directory (default <data_dir>/checkpoints).
    checkpoint_dir: Path | None = None
    max_checkpoint_bytes: int = Field(default=1024**3, ge=1)
    # Image folders (and listing files) named at registration live inside this directory
    # (default <data_dir>/images).
    image_dir: Path | None = None
    heartbeat_interval_s: float = Field(default=2.0, gt=0)
    heartbeat_grace_s: float = Field(default=20.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    poll_interval_s: float = Field(default=1.0, gt=0)
    embedded_worker: bool = True
    # Device agents: one bearer token per agent device (`device=token,device=token`; the agent
    # endpoints answer 401 while none is set), how long a claimed measurement task stays theirs,
    # and how long a job waits for their results.
    agent_tokens: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict, repr=False)
    # The former single token for every device: refused at start-up (it let any agent act for
    # any device); kept as a field only to say so.
    agent_token: str | None = Field(default=None, repr=False)
    # Accepted as an admin bearer token: bootstraps the first admin (then `hwnas tokens create`).
    # Setting it, or creating any API token, turns authentication on (see docs/security.md).
    admin_token: SecretStr | None = Field(default=None, repr=False)
    agent_lease_s: float = Field(default=60.0, gt=0)
    agent_task_max_attempts: int = Field(default=5, ge=1)
    agent_wait_timeout_s: float = Field(default=3600.0, gt=0)
    max_latency_table_bytes: int = Field(default=5 * 1024 * 1024, ge=1)
    # Every other request body (JSON) is refused with 413 past this size.
    max_request_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Serving (service/api/overload.py): requests running at once per process (the thread pool
    # and the database pool are sized to it), how many more may wait and for how long before a
    # 503 with Retry-After; idle keep-alive kept well past clients' reuse window (httpx 5 s,
    # browsers ~60 s) so the server never closes a connection a client is about to reuse; and
    # how long a stopping server lets in-flight requests finish.
    max_concurrent_requests: int = Field(default=40, ge=1, le=1000)
    max_queued_requests: int = Field(default=1000, ge=0)
    queue_timeout_s: float = Field(default=10.0, gt=0)
    keep_alive_s: int = Field(default=75, ge=1)
    graceful_shutdown_s: int = Field(default=30, ge=1)
    # Answers served from memory between database checks (docs/api.md, docs/security.md): a
    # front is at most `front_max_age_s` older than the database, and a token created or revoked
    # by another process (the CLI, another server process) takes effect within `auth_recheck_s`.
    # 0: every request reads the database.
    front_max_age_s: float = Field(default=0.5, ge=0, le=60)
    auth_recheck_s: float = Field(default=1.0, ge=0, le=60)
    # Where validations run: `local` (in the worker) or `ray` (extra hwnas[ray]; a pool of Ray
    # actors per worker, docs/scale-out.md). `ray_address`: `auto` (the cluster this host runs),
    # `ray://head:10001`, or `local` (an in-process Ray).
    executor: Literal["local", "ray"] = "local"
    ray_address: str = "auto"
    ray_accuracy_actors: int = Field(default=2, ge=1)
    ray_accuracy_cpus: float = Field(default=1.0, gt=0)
    ray_gpus_per_actor: float = Field(default=0.25, ge=0, le=1)  # asked when the cluster has GPUs
    ray_latency_actors: int = Field(default=1, ge=1)
    # Asynchronous batches: LINAS refits and proposes once this fraction of the last batch is
    # back (1.0: synchronous batches). The local executor returns a batch at once either way.
    batch_return_fraction: float = Field(default=0.5, gt=0, le=1)

    @field_validator("agent_tokens", mode="before")
    @classmethod
    def _parse_agent_tokens(cls, value: object) -> object:
        """`device=token,device=token` (the environment's form) or a mapping."""
        if not isinstance(value, str):
            return value
        tokens: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            device, sep, token = item.partition("=")
            if not sep or not device.strip():
                raise ValueError("HWNAS_AGENT_TOKENS must look like device=token,device=token")
            if device.strip() in tokens:
                raise ValueError(f"HWNAS_AGENT_TOKENS names device {device.strip()!r} twice")
            tokens[device.strip()] = token.strip()
        return tokens

    @field_validator("agent_tokens")
    @classmethod
    def _check_agent_tokens(cls, tokens: dict[str, str]) -> dict[str, str]:
        for device, token in tokens.items():
            if not re.fullmatch(AGENT_TOKEN_PATTERN, token):
                raise ValueError(
                    f"the agent token of device {device!r} must be 16..200 printable ASCII "
                    "characters without spaces, ',' or '='"
                )
        if len(set(tokens.values())) != len(tokens):
            raise ValueError("HWNAS_AGENT_TOKENS gives two devices the same token")
        return tokens

    @field_validator("admin_token")
    @classmethod
    def _check_admin_token(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and not re.fullmatch(r"[!-~]{16,200}", token.get_secret_value()):
            raise ValueError("HWNAS_ADMIN_TOKEN must be 16..200 printable ASCII characters")
        return token

    @model_validator(mode="after")
    def _no_shared_agent_token(self) -> Settings:
        if self.agent_token is not None:
            raise ValueError(
                "HWNAS_AGENT_TOKEN (one token for every agent device) is no longer accepted: "
                "it let any agent claim and answer any device's tasks. Give each agent device "
                "its own token: HWNAS_AGENT_TOKENS=device=token,device=token"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        """`HWNAS_DATABASE_URL`, or a SQLite file under the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'hwnas.db').resolve()}"

    @property
    def artifact_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def resolved_checkpoint_dir(self) -> Path:
        """`HWNAS_CHECKPOINT_DIR`: where client-given checkpoint names are resolved."""
        return (self.checkpoint_dir or self.data_dir / "checkpoints").resolve()

    @property
    def resolved_image_dir(self) -> Path:
        """`HWNAS_IMAGE_DIR`: where image folders named at registration are resolved."""
        return (self.image_dir or self.data_dir / "images").resolve()

    @property
    def uploaded_checkpoint_dir(self) -> Path:
        """Where uploaded checkpoints are kept, each named by its sha256."""
        return self.artifact_dir / "checkpoints"
