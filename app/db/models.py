"""ORM models: one class per table. Rows stay below the service layer; the API converts them.

Later revisions add runs, run metrics, calibrators and datasets; each gets its own class here.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final, Literal, get_args

from sqlalchemy import CheckConstraint, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, JSONDocument, utcnow

Task = Literal["binary", "multiclass", "multilabel", "regression"]
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
