"""Every setting of the service in one place, read from ``EVALSERVE_*`` environment variables.

The defaults make the embedded mode: a SQLite file in the working directory and an in-process job
runner, so ``evalserve serve`` works on a fresh machine with nothing else running.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Service settings. Each field is set by the environment variable ``EVALSERVE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="EVALSERVE_", env_file=None, extra="ignore")

    database_url: str = Field(
        "sqlite:///./evalserve.db",
        description="SQLAlchemy URL. PostgreSQL: postgresql+psycopg://user@host:5432/dbname.",
    )
    db_pool_size: int = Field(5, ge=1, description="Connections kept open (PostgreSQL).")
    db_max_overflow: int = Field(10, ge=0, description="Extra connections under load.")
    db_pool_timeout_s: float = Field(10.0, gt=0, description="Wait for a free connection.")
    broker_url: str | None = Field(
        None,
        description="Celery broker (redis://127.0.0.1:6379/0). Unset: in-process job runner.",
    )
    host: str = Field("127.0.0.1", description="Address `evalserve serve` binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port `evalserve serve` listens on.")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info")
    max_body_bytes: int = Field(
        512 * 1024 * 1024, gt=0, description="Largest request body accepted (else 413)."
    )
    max_rows: int = Field(50_000_000, gt=0, description="Most rows in one batch (else 413).")
    max_curve_points: int = Field(
        1000, ge=2, description="Default cap on the points returned per curve."
    )


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
