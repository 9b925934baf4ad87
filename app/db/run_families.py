"""Queries of domain-validation runs: a parent run and its child runs (``runs.parent_id``).

The parent is never trained: it is ``running`` from creation until its last child is over, and
is then finished by one conditional UPDATE (``WHERE status = 'running'``), so of several
finalizers (the last children's workers, reapers) exactly one writes the result. Like
:mod:`app.db.runs`, functions take the caller's session and never commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, exists, select, update
from sqlalchemy.orm import Session, aliased

from app.db.models import TERMINAL_STATUSES, Evaluation, Run

__all__ = [
    "cancel_children",
    "child_results",
    "finish_parent",
    "fresh_run",
    "has_children",
    "parent_of",
    "ready_parents",
]

_HEADLINE = (
    Evaluation.accuracy,
    Evaluation.f1,
    Evaluation.roc_auc,
    Evaluation.average_precision,
    Evaluation.log_loss,
    Evaluation.brier,
    Evaluation.ece,
    Evaluation.rmse,
    Evaluation.mae,
    Evaluation.r2,
)


def has_children() -> ColumnElement[bool]:
    """``EXISTS (a run whose parent_id is this run)``, correlated to :class:`Run` (served by
    ix_runs_parent_id)."""
    child = aliased(Run)
    return exists().where(child.parent_id == Run.id)


def _unfinished_children() -> ColumnElement[bool]:
    child = aliased(Run)
    return exists().where(child.parent_id == Run.id, child.status.not_in(TERMINAL_STATUSES))


def fresh_run(session: Session, run_id: str) -> Run | None:
    """The run as the database has it now (not the session's cached copy)."""
    return session.get(Run, run_id, populate_existing=True)


def parent_of(session: Session, run_id: str) -> str | None:
    """The parent id of a run (None for a run that is nobody's child, or unknown)."""
    return session.scalar(select(Run.parent_id).where(Run.id == run_id))


def child_results(session: Session, parent_id: str) -> list[Row[Any]]:
    """Each child of ``parent_id``, oldest first: ``(id, status, error, data, summary,
    evaluation_id)`` and the headline metrics of its validation evaluation (``accuracy``
    ... ``r2``, None without one)."""
    query = (
        select(
            Run.id,
            Run.status,
            Run.error,
            Run.data,
            Run.summary,
            Run.evaluation_id,
            *_HEADLINE,
        )
        .outerjoin(Evaluation, Evaluation.id == Run.evaluation_id)
        .where(Run.parent_id == parent_id)
        .order_by(Run.created_at, Run.id)
    )
    return list(session.execute(query).all())


def ready_parents(session: Session, *, limit: int = 100) -> list[str]:
    """Ids of parents still ``running`` whose children are all over (the reaper finishes
    them when the last child's worker died before it could)."""
    query = (
        select(Run.id)
        .where(Run.status == "running", has_children(), ~_unfinished_children())
        .order_by(Run.created_at, Run.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def finish_parent(
    session: Session,
    parent_id: str,
    *,
    status: str,
    error: str | None,
    summary: dict[str, Any],
    now: datetime,
) -> bool:
    """Finish a running parent whose children are all over; True if this call did it.

    One conditional UPDATE. On PostgreSQL (READ COMMITTED) two concurrent finalizers both
    try it: the second blocks on the first's row lock, then re-checks ``status = 'running'``
    against the committed row, finds ``succeeded`` (or ``failed``...) and updates nothing. On
    SQLite writers are serialized by the database lock, with the same outcome.
    """
    statement = (
        update(Run)
        .where(Run.id == parent_id, Run.status == "running", ~_unfinished_children())
        .values(
            status=status,
            error=error,
            summary=summary,
            finished_at=now,
            metrics_seq=Run.metrics_seq + 1,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]


def cancel_children(session: Session, parent_id: str, *, now: datetime) -> None:
    """Cancel a parent's children: queued ones at once, running ones at their next batch
    boundary (their cancel flag)."""
    for status, values in (
        ("queued", {"status": "cancelled", "finished_at": now, "cancel_requested": True}),
        ("running", {"cancel_requested": True}),
    ):
        session.execute(
            update(Run)
            .where(Run.parent_id == parent_id, Run.status == status)
            .values(**values, metrics_seq=Run.metrics_seq + 1)
            .execution_options(synchronize_session=False)
        )
