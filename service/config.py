"""Service settings from the environment (prefix `HWNAS_`), validated once at start-up."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where data lives, which database to use, and how workers pace themselves."""

    model_config = SettingsConfigDict(env_prefix="HWNAS_", extra="ignore")

    data_dir: Path = Path("./data")
    database_url: str | None = None
    heartbeat_interval_s: float = Field(default=2.0, gt=0)
    heartbeat_grace_s: float = Field(default=20.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    poll_interval_s: float = Field(default=1.0, gt=0)
    embedded_worker: bool = True
    # Device agents: the bearer token they present (agent endpoints answer 401 while unset), how
    # long a claimed measurement task stays theirs, and how long a job waits for their results.
    agent_token: str | None = Field(default=None, min_length=16)
    agent_lease_s: float = Field(default=60.0, gt=0)
    agent_task_max_attempts: int = Field(default=5, ge=1)
    agent_wait_timeout_s: float = Field(default=3600.0, gt=0)
    max_latency_table_bytes: int = Field(default=5 * 1024 * 1024, ge=1)

    @property
    def resolved_database_url(self) -> str:
        """`HWNAS_DATABASE_URL`, or a SQLite file under the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'hwnas.db').resolve()}"

    @property
    def artifact_dir(self) -> Path:
        return self.data_dir / "artifacts"
