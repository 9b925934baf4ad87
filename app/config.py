"""Every setting of the service in one place, read from ``EVALSERVE_*`` environment variables.

The defaults make the embedded mode: a SQLite file in the working directory and an in-process job
runner, so ``evalserve serve`` works on a fresh machine with nothing else running.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator
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
    auth: Literal["on", "off"] = Field(
        "off",
        description="on: requests under /v1 need an API key (`evalserve keys create`); "
        "writes need a key that is not read-only.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to call the API from a browser (dashboards), as a JSON "
        'list: ["https://dash.example.com"]. Empty: no CORS headers.',
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level of the API and the workers."
    )
    max_body_bytes: int = Field(
        512 * 1024 * 1024, gt=0, description="Largest request body accepted (else 413)."
    )
    max_rows: int = Field(50_000_000, gt=0, description="Most rows in one batch (else 413).")
    max_curve_points: int = Field(
        1000, ge=2, description="Default cap on the points returned per curve."
    )
    request_timeout_s: float = Field(
        300.0,
        ge=0,
        description="A request whose response has not started after this many seconds gets a "
        "503 problem body; its work is abandoned (a compute thread runs on, its result and "
        "transaction are discarded). Streams (run events) are not cut once started. 0: none.",
    )
    graceful_shutdown_s: float = Field(
        30.0,
        gt=0,
        description="On SIGTERM `evalserve serve` stops accepting connections and lets "
        "in-flight requests finish for up to this long (uvicorn timeout_graceful_shutdown).",
    )

    # -- training runs and workers ----------------------------------------------------------
    result_backend_url: str | None = Field(
        None, description="Celery result backend; unset: results are not kept (the DB has them)."
    )
    gpu_queue: str = Field(
        "evalserve.gpu",
        min_length=1,
        description="Queue of runs with device auto or cuda (one job at a time per GPU).",
    )
    cpu_queue: str = Field(
        "evalserve.cpu", min_length=1, description="Queue of runs with device cpu."
    )
    worker_concurrency: int = Field(
        1, ge=1, description="Jobs one worker (or the in-process runner) trains at once."
    )
    run_time_limit_s: float = Field(
        4 * 3600.0, gt=0, description="Longest a run may train before it is stopped and failed."
    )
    visibility_timeout_s: float = Field(
        5 * 3600.0,
        gt=0,
        description="Redis redelivers an unacknowledged task after this; must exceed the "
        "run time limit, or a long run would be delivered twice.",
    )
    heartbeat_interval_s: float = Field(
        5.0, gt=0, description="How often a running job writes its heartbeat (and reads cancel)."
    )
    heartbeat_timeout_s: float = Field(
        60.0, gt=0, description="A running run whose heartbeat is older is reaped."
    )
    reaper_interval_s: float = Field(10.0, gt=0, description="How often the reaper looks.")
    requeue_dead_runs: bool = Field(
        False, description="Re-queue runs of dead workers (up to max_run_attempts) not fail them."
    )
    max_run_attempts: int = Field(3, ge=1, description="Deliveries of one run before it fails.")
    resume_interrupted_runs: bool = Field(
        True,
        description="A run whose worker shuts down (SIGTERM, app stop) is checkpointed at its "
        "last complete epoch and queued again, to resume there (up to max_run_attempts claims); "
        "off: it fails, with the epoch it reached.",
    )
    max_concurrent_runs_per_key: int = Field(
        10,
        ge=0,
        description="Training runs one API key may have queued or running at once (else 429); "
        "0: unlimited. Applies with EVALSERVE_AUTH=on (runs made without a key are not counted).",
    )
    redispatch_queued_after_s: float = Field(
        900.0,
        gt=0,
        description="Celery mode: a run still queued this long after it was sent is sent again "
        "(its message may never have reached the broker); a duplicate delivery does nothing.",
    )
    events_poll_interval_s: float = Field(
        0.5, gt=0, description="How often /v1/runs/{id}/events reads new metrics."
    )
    max_dataset_bytes: int = Field(
        256 * 1024 * 1024, gt=0, description="Largest dataset upload (else 413)."
    )
    max_external_metrics: int = Field(
        1000, ge=1, description="Most metrics in one log-batch request (else 413)."
    )

    @model_validator(mode="after")
    def _check_worker_timing(self) -> Settings:
        # Celery's hard limit is run_time_limit_s + 60 s (see app.worker.celery_app).
        if self.visibility_timeout_s <= self.run_time_limit_s + 60:
            raise ValueError(
                "visibility_timeout_s must exceed run_time_limit_s + 60 s, or Redis redelivers "
                "a run that is still training"
            )
        if self.heartbeat_timeout_s <= 2 * self.heartbeat_interval_s:
            raise ValueError("heartbeat_timeout_s must exceed twice heartbeat_interval_s")
        return self


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


def settings_table() -> str:
    """The README's table of environment variables, generated so it cannot drift."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, info in Settings.model_fields.items():
        default = "unset" if info.default is None else f"`{info.default}`"
        description = (info.description or "").replace("|", "\\|")
        rows.append(f"| `EVALSERVE_{name.upper()}` | {default} | {description} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())
