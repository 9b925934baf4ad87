"""ORM models: one class per table. Rows stay below the service layer; the API converts them.

Later revisions add runs, run metrics, calibrators and datasets; each gets its own class here.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final, Literal, get_args

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db.base import Base, JSONDocument, utcnow

Task = Literal["binary", "multiclass", "multilabel", "regression", "detection", "segmentation"]
TASKS: Final[tuple[str, ...]] = get_args(Task)

#: The metric columns copied out of a report so lists can be sorted and filtered in SQL.
HEADLINE_METRICS: Final[tuple[str, ...]] = (
    "accuracy",
    "f1",
    "roc_auc",
    "average_precision",
    "log_loss",
    "brier",
    "ece",
    "rmse",
    "mae",
    "r2",
)


def new_id() -> str:
    """A fresh primary key: a random UUID4 in its 36-character text form."""
    return str(uuid.uuid4())


class Evaluation(Base):
    """One stored evaluation: the full report as JSON plus headline metrics as columns.

    Text columns are Unicode throughout. PostgreSQL rejects the NUL character (``\\x00``) in text
    and in JSON strings (``\\u0000``), while SQLite accepts it; the API refuses NUL in names, models
    and tags so both backends store the same things.
    """

    __tablename__ = "evaluations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(
        default=utcnow, server_default=func.now(), index=True
    )
    task: Mapped[str] = mapped_column(String(20), index=True)
    name: Mapped[str | None] = mapped_column(String(200), index=True)
    model: Mapped[str | None] = mapped_column(String(200), index=True)
    tags: Mapped[list[str]] = mapped_column(JSONDocument, default=list, server_default=text("'[]'"))
    n_samples: Mapped[int]
    report: Mapped[dict[str, Any]] = mapped_column(JSONDocument)

    accuracy: Mapped[float | None] = mapped_column(index=True)
    f1: Mapped[float | None]
    roc_auc: Mapped[float | None] = mapped_column(index=True)
    average_precision: Mapped[float | None]
    log_loss: Mapped[float | None]
    brier: Mapped[float | None]
    ece: Mapped[float | None]
    rmse: Mapped[float | None] = mapped_column(index=True)
    mae: Mapped[float | None]
    r2: Mapped[float | None]

    __table_args__ = (
        CheckConstraint("task IN ({})".format(", ".join(f"'{t}'" for t in TASKS)), name="task"),
        CheckConstraint("n_samples >= 0", name="n_samples_nonnegative"),
        Index("ix_evaluations_model_created_at", "model", "created_at"),
        # Tag filters use jsonb containment (tags @> '["x"]'); jsonb_path_ops is the smaller,
        # faster GIN operator class for exactly that operator. SQLite has no equivalent.
        Index(
            "ix_evaluations_tags",
            "tags",
            postgresql_using="gin",
            postgresql_ops={"tags": "jsonb_path_ops"},
            info={"only_on": "postgresql"},
        ).ddl_if(dialect="postgresql"),
    )

    def __repr__(self) -> str:
        return f"Evaluation(id={self.id!r}, task={self.task!r}, name={self.name!r})"


class Calibrator(Base):
    """A fitted calibrator, stored so new scores can be calibrated later.

    ``state`` is the calibrator's own serialization (``Calibrator.to_dict()`` of
    :mod:`app.core.calibration`); ``report`` holds the fit report (metrics before and after,
    reliability diagrams) as returned when it was fitted.
    """

    __tablename__ = "calibrators"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(
        default=utcnow, server_default=func.now(), index=True
    )
    method: Mapped[str] = mapped_column(String(20), index=True)
    task: Mapped[str] = mapped_column(String(20))
    n_classes: Mapped[int]
    score_type: Mapped[str] = mapped_column(String(20))
    name: Mapped[str | None] = mapped_column(String(200), index=True)
    model: Mapped[str | None] = mapped_column(String(200), index=True)
    tags: Mapped[list[str]] = mapped_column(JSONDocument, default=list, server_default=text("'[]'"))
    n_samples: Mapped[int]
    state: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    report: Mapped[dict[str, Any]] = mapped_column(JSONDocument)

    __table_args__ = (
        CheckConstraint("task IN ('binary', 'multiclass')", name="task"),
        CheckConstraint("n_samples >= 0", name="n_samples_nonnegative"),
    )

    def __repr__(self) -> str:
        return f"Calibrator(id={self.id!r}, method={self.method!r}, task={self.task!r})"


#: Run states; the last three are terminal.
RUN_STATUSES: Final[tuple[str, ...]] = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL_STATUSES: Final[frozenset[str]] = frozenset({"succeeded", "failed", "cancelled"})
_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only


class Dataset(Base):
    """An uploaded table (CSV, Parquet or Arrow), stored as uploaded so every worker can read it.

    ``columns`` describes each column (name, Arrow type, numeric, null count, finite, distinct
    count) and ``target_summary`` the target (min, max, integral, distinct values), so a run can
    be validated against the dataset without reading ``content``.
    """

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(
        default=utcnow, server_default=func.now(), index=True
    )
    name: Mapped[str | None] = mapped_column(String(200), index=True)
    format: Mapped[str] = mapped_column(String(20))
    target: Mapped[str] = mapped_column(String(200))
    n_rows: Mapped[int]
    size_bytes: Mapped[int]
    columns: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument)
    target_summary: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True, deferred_raiseload=True)

    __table_args__ = (
        CheckConstraint("format IN ('csv', 'parquet', 'arrow')", name="format"),
        CheckConstraint("n_rows >= 0", name="n_rows_nonnegative"),
    )

    def __repr__(self) -> str:
        return f"Dataset(id={self.id!r}, name={self.name!r}, n_rows={self.n_rows!r})"


class Run(Base):
    """A training run: its spec, status, progress, result and trained weights.

    The database is the source of truth for a run's status; a worker claims a run by moving it
    ``queued -> running`` in one conditional UPDATE, writes ``heartbeat_at`` while it trains and
    reads ``cancel_requested`` at batch boundaries. ``attempts`` counts claims, and every later
    write of a worker is conditional on it, so a run that was reaped and re-queued is never
    overwritten by the worker that lost it. ``metrics_seq`` grows with every metric write and
    status change: the ETag of the metric history is derived from it.
    """

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(
        default=utcnow, server_default=func.now(), index=True
    )
    name: Mapped[str | None] = mapped_column(String(200), index=True)
    tags: Mapped[list[str]] = mapped_column(JSONDocument, default=list, server_default=text("'[]'"))
    task: Mapped[str] = mapped_column(String(20))
    external: Mapped[bool] = mapped_column(default=False, server_default=false())
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    queue: Mapped[str | None] = mapped_column(String(200))
    spec: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    data: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    dataset_id: Mapped[str | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="RESTRICT"), index=True
    )
    val_dataset_id: Mapped[str | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="RESTRICT"), index=True
    )
    #: Inline training data as an ``.npz`` archive (X, y, optional X_val, y_val, groups).
    inline_data: Mapped[bytes | None] = mapped_column(
        LargeBinary, deferred=True, deferred_raiseload=True
    )
    epoch: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    total_epochs: Mapped[int | None]
    attempts: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    cancel_requested: Mapped[bool] = mapped_column(default=False, server_default=false())
    metrics_seq: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    #: When the run id was last handed to the broker (Celery mode).
    dispatched_at: Mapped[datetime | None]
    worker: Mapped[str | None] = mapped_column(String(200))
    device: Mapped[str | None] = mapped_column(String(50))
    error: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    n_features: Mapped[int | None]
    #: ``torch.save`` of the trained ``state_dict`` (CPU tensors).
    state_dict: Mapped[bytes | None] = mapped_column(
        LargeBinary, deferred=True, deferred_raiseload=True
    )
    evaluation_id: Mapped[str | None] = mapped_column(
        ForeignKey("evaluations.id", ondelete="SET NULL"), index=True
    )
    #: The API key that created the run (NULL without auth); caps concurrent runs per key.
    #: No foreign key: keys are revoked, never deleted.
    api_key_id: Mapped[str | None] = mapped_column(String(36))
    #: The data checks of the run's training vs validation split (:mod:`app.core.data_checks`),
    #: stored when it starts training; loaded only when asked for.
    data_checks: Mapped[dict[str, Any] | None] = mapped_column(
        JSONDocument, deferred=True, deferred_raiseload=True
    )
    #: ``torch.save`` of model + optimizer state after ``checkpoint_epoch`` (resumable runs).
    checkpoint: Mapped[bytes | None] = mapped_column(
        LargeBinary, deferred=True, deferred_raiseload=True
    )
    checkpoint_epoch: Mapped[int | None]
    #: The domain-validation run this run is one fit of (app.services.domain_validation).
    #: Its foreign key (ON DELETE CASCADE) is in ``__table_args__``: PostgreSQL only, since
    #: SQLite cannot add a constraint to an existing table (migration 0009).
    parent_id: Mapped[str | None] = mapped_column(String(36), index=True)

    evaluation: Mapped[Evaluation | None] = relationship(lazy="raise")
    dataset: Mapped[Dataset | None] = relationship(foreign_keys=[dataset_id], lazy="raise")
    metrics: Mapped[list[RunMetric]] = relationship(
        back_populates="run", lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        CheckConstraint(
            "status IN ({})".format(", ".join(f"'{s}'" for s in RUN_STATUSES)), name="status"
        ),
        CheckConstraint("task IN ('binary', 'multiclass', 'regression')", name="task"),
        # The reaper's query: running runs by heartbeat age.
        Index("ix_runs_status_heartbeat_at", "status", "heartbeat_at"),
        # Concurrent runs of one API key: WHERE api_key_id = ? AND status IN (...).
        Index("ix_runs_api_key_id_status", "api_key_id", "status"),
        ForeignKeyConstraint(
            ["parent_id"],
            ["runs.id"],
            ondelete="CASCADE",
            info={"only_on": "postgresql"},
        ).ddl_if(dialect="postgresql"),
        Index(
            "ix_runs_tags",
            "tags",
            postgresql_using="gin",
            postgresql_ops={"tags": "jsonb_path_ops"},
            info={"only_on": "postgresql"},
        ).ddl_if(dialect="postgresql"),
    )

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, status={self.status!r}, name={self.name!r})"


class RunMetric(Base):
    """One value of one metric of a run at one step (an epoch for runs trained here).

    Unique on ``(run_id, name, step)``: writes are upserts, so a retried write never duplicates.
    That constraint's index also serves the history queries (``WHERE run_id = ? AND name IN
    (...) AND step > ?``). ``value`` is NULL where the metric was undefined, never NaN.
    """

    __tablename__ = "run_metrics"

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(250))
    step: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float | None]
    timestamp: Mapped[datetime] = mapped_column(default=utcnow)

    run: Mapped[Run] = relationship(back_populates="metrics", lazy="raise")

    __table_args__ = (UniqueConstraint("run_id", "name", "step"),)


#: Scopes of an API key: ``read`` may only GET; ``write`` may do everything.
API_KEY_SCOPES: Final[tuple[str, ...]] = ("read", "write")


class ApiKey(Base):
    """An API key. Only the SHA-256 of the secret is stored, never the secret itself.

    ``prefix`` (the secret's first characters) lets people tell keys apart in listings;
    ``key_hash`` is unique, so a request's key is found by one indexed lookup of its hash.
    """

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    __table_args__ = (CheckConstraint("scope IN ('read', 'write')", name="scope"),)

    def __repr__(self) -> str:
        return f"ApiKey(id={self.id!r}, name={self.name!r}, scope={self.scope!r})"


#: Inspection states; the last two are terminal.
INSPECTION_STATUSES: Final[tuple[str, ...]] = ("queued", "running", "succeeded", "failed")


class Inspection(Base):
    """A job that inspects a trained run (permutation importance, attributions, robustness...).

    Claimed and finished like a run: ``queued -> running`` in one conditional UPDATE that also
    counts ``attempts``; later writes are conditional on that attempt. ``params`` holds the
    checked request, ``result`` the answer (plain JSON), ``error`` why it failed.
    """

    __tablename__ = "inspections"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(
        default=utcnow, server_default=func.now(), index=True
    )
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    queue: Mapped[str | None] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    worker: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    #: When the inspection id was last handed to the broker (Celery mode).
    dispatched_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint(
            "status IN ({})".format(", ".join(f"'{s}'" for s in INSPECTION_STATUSES)),
            name="status",
        ),
        # The reaper's and the runner's queries: by status, then heartbeat age.
        Index("ix_inspections_status_heartbeat_at", "status", "heartbeat_at"),
    )

    def __repr__(self) -> str:
        return f"Inspection(id={self.id!r}, kind={self.kind!r}, status={self.status!r})"
