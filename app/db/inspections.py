"""Queries of inspection jobs. Like :mod:`app.db.runs`: the caller's session, never a commit,
and every status change a single conditional UPDATE that reports whether it applied."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, or_, select, update
from sqlalchemy.orm import Session

from app.db.models import Inspection

__all__ = [
    "claim",
    "claim_redispatch",
    "create",
    "finish",
    "get",
    "heartbeat",
    "mark_dispatched",
    "queued_ids",
    "reap",
    "stale",
    "undelivered",
]


def create(session: Session, **fields: Any) -> Inspection:
    """Add a queued inspection and flush it; returns the row with its ``id`` set."""
    row = Inspection(status="queued", **fields)
    session.add(row)
    session.flush()
    return row


def get(session: Session, inspection_id: str) -> Inspection | None:
    return session.get(Inspection, inspection_id, populate_existing=True)


def _update(session: Session, *where: ColumnElement[bool], **values: Any) -> bool:
    statement = (
        update(Inspection)
        .where(*where)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]


def claim(session: Session, inspection_id: str, *, worker: str, now: datetime) -> int | None:
    """``queued -> running`` atomically; the attempt number, or None (a duplicate delivery)."""
    if not _update(
        session,
        Inspection.id == inspection_id,
        Inspection.status == "queued",
        status="running",
        attempts=Inspection.attempts + 1,
        started_at=now,
        heartbeat_at=now,
        worker=worker,
    ):
        return None
    return session.scalar(select(Inspection.attempts).where(Inspection.id == inspection_id))


def _ours(inspection_id: str, attempt: int) -> tuple[ColumnElement[bool], ...]:
    return (
        Inspection.id == inspection_id,
        Inspection.status == "running",
        Inspection.attempts == attempt,
    )


def heartbeat(session: Session, inspection_id: str, attempt: int, *, now: datetime) -> bool:
    """Write the heartbeat; False when the job is no longer this attempt's."""
    return _update(session, *_ours(inspection_id, attempt), heartbeat_at=now)


def finish(
    session: Session,
    inspection_id: str,
    attempt: int,
    *,
    status: str,
    now: datetime,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> bool:
    """Store this attempt's outcome (``succeeded`` with a result, or ``failed`` with why)."""
    return _update(
        session,
        *_ours(inspection_id, attempt),
        status=status,
        result=result,
        error=error,
        finished_at=now,
    )


def queued_ids(session: Session, *, limit: int = 1000) -> list[str]:
    """Inspections waiting for a worker, oldest first."""
    query = (
        select(Inspection.id)
        .where(Inspection.status == "queued")
        .order_by(Inspection.created_at, Inspection.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def mark_dispatched(session: Session, inspection_id: str, *, now: datetime) -> bool:
    """Record that a queued inspection's id was handed to the broker."""
    return _update(
        session, Inspection.id == inspection_id, Inspection.status == "queued", dispatched_at=now
    )


def undelivered(
    session: Session, *, cutoff: datetime
) -> list[Row[str, str | None, datetime | None]]:
    """``(id, queue, dispatched_at)`` of inspections still queued although created and last
    sent before ``cutoff``: their message may never have reached the broker."""
    query = select(Inspection.id, Inspection.queue, Inspection.dispatched_at).where(
        Inspection.status == "queued",
        Inspection.created_at < cutoff,
        or_(Inspection.dispatched_at.is_(None), Inspection.dispatched_at < cutoff),
    )
    return list(session.execute(query).all())


def claim_redispatch(
    session: Session, inspection_id: str, *, seen: datetime | None, now: datetime
) -> bool:
    """Take the right to send ``inspection_id`` again: one conditional UPDATE, so of several
    reapers that saw the same ``dispatched_at`` exactly one sends it."""
    unchanged = (
        Inspection.dispatched_at.is_(None) if seen is None else Inspection.dispatched_at == seen
    )
    return _update(
        session,
        Inspection.id == inspection_id,
        Inspection.status == "queued",
        unchanged,
        dispatched_at=now,
    )


def stale(session: Session, *, cutoff: datetime) -> list[Row[str, datetime | None]]:
    """``(id, heartbeat_at)`` of running inspections whose heartbeat is older than ``cutoff``."""
    query = select(Inspection.id, Inspection.heartbeat_at).where(
        Inspection.status == "running",
        or_(Inspection.heartbeat_at < cutoff, Inspection.heartbeat_at.is_(None)),
    )
    return list(session.execute(query))


def reap(
    session: Session, inspection_id: str, *, seen: datetime | None, error: str, now: datetime
) -> bool:
    """Fail a running inspection whose heartbeat has not moved since it was seen stale."""
    unchanged = (
        Inspection.heartbeat_at.is_(None) if seen is None else Inspection.heartbeat_at == seen
    )
    return _update(
        session,
        Inspection.id == inspection_id,
        Inspection.status == "running",
        unchanged,
        status="failed",
        error=error,
        finished_at=now,
    )
