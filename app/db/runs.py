"""Queries of training runs, their metrics and uploaded datasets.

Like :mod:`app.db.repositories`, functions take the caller's session and never commit. Status
changes made by workers are single conditional UPDATEs (``WHERE status = ... AND attempts =
...``), so concurrent workers, a reaper and the API never overwrite each other's decisions:
the function reports whether its update applied.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, undefer

from app.db import run_families
from app.db.base import utcnow
from app.db.models import Dataset, Run, RunMetric
from app.db.repositories import has_tag, newest_first_page

__all__ = [
    "MetricRow",
    "claim_run",
    "count_active_runs_of_key",
    "create_dataset",
    "create_run",
    "finish_run",
    "get_checkpoint",
    "get_dataset",
    "get_run",
    "heartbeat",
    "list_datasets",
    "list_metrics",
    "list_runs",
    "metric_names",
    "queued_run_ids",
    "reap_run",
    "record_epoch",
    "release_run",
    "request_cancel",
    "requeue_run",
    "run_version",
    "set_status",
    "stale_runs",
    "suspend_run",
    "update_attempt",
    "upsert_metrics",
]

#: What a run handed back to the queue looks like again.
_QUEUED_AGAIN: dict[str, Any] = {
    "status": "queued",
    "epoch": 0,
    "worker": None,
    "heartbeat_at": None,
    "started_at": None,
    "device": None,
    "checkpoint": None,
    "checkpoint_epoch": None,
}

#: ``(name, step, value, timestamp)``; ``value`` None for an undefined metric.
MetricRow = tuple[str, int, float | None, datetime]


# -- datasets --------------------------------------------------------------------------------------
def create_dataset(session: Session, **fields: Any) -> Dataset:
    """Add a dataset and flush it; returns the row with its ``id`` set."""
    dataset = Dataset(**fields)
    session.add(dataset)
    session.flush()
    return dataset


def get_dataset(session: Session, dataset_id: str, *, with_content: bool = False) -> Dataset | None:
    """The dataset, or None; its ``content`` raises on access unless ``with_content``."""
    options = [undefer(Dataset.content)] if with_content else []
    return session.get(Dataset, dataset_id, options=options)


def list_datasets(session: Session, *, limit: int, offset: int) -> tuple[list[Dataset], int]:
    """One page of datasets, newest first, and the total count."""
    return newest_first_page(session, Dataset, limit=limit, offset=offset)


# -- runs ------------------------------------------------------------------------------------------
def create_run(session: Session, **fields: Any) -> Run:
    """Add a run and flush it; returns the row with its ``id`` and ``created_at`` set."""
    run = Run(**fields)
    session.add(run)
    session.flush()
    return run


def get_run(
    session: Session, run_id: str, *, with_state: bool = False, with_data: bool = False
) -> Run | None:
    """The run, or None. Its weights and inline data are loaded only when asked for."""
    options = []
    if with_state:
        options.append(undefer(Run.state_dict))
    if with_data:
        options.append(undefer(Run.inline_data))
    return session.get(Run, run_id, options=options, populate_existing=bool(options))


def stored_data_checks(session: Session, run_id: str) -> dict[str, Any] | None:
    """The data checks stored with a run (None: not computed yet, or no such run)."""
    checks: dict[str, Any] | None = session.scalar(select(Run.data_checks).where(Run.id == run_id))
    return checks


def run_version(session: Session, run_id: str) -> Row[str, int, int] | None:
    """``(status, metrics_seq, epoch)`` of a run, in one narrow query (for ETags and polling)."""
    return session.execute(
        select(Run.status, Run.metrics_seq, Run.epoch).where(Run.id == run_id)
    ).first()


def list_runs(
    session: Session,
    *,
    status: str | None = None,
    name: str | None = None,
    tag: str | None = None,
    limit: int = 50,
    offset: int = 0,
    parent_id: str | None = None,
) -> tuple[list[Run], int]:
    """One page of runs, newest first, and the total matching the filters (exact, ANDed)."""
    conditions: list[ColumnElement[bool]] = []
    if parent_id is not None:
        conditions.append(Run.parent_id == parent_id)
    if status is not None:
        conditions.append(Run.status == status)
    if name is not None:
        conditions.append(Run.name == name)
    if tag is not None:
        conditions.append(has_tag(session, Run.tags, tag))
    return newest_first_page(session, Run, conditions, limit=limit, offset=offset)


def count_active_runs_of_key(session: Session, api_key_id: str) -> int:
    """Internal runs of an API key that are queued or running (the per-key concurrency cap;
    ix_runs_api_key_id_status serves it). A domain-validation parent trains nothing and is not
    counted; its children are."""
    query = select(func.count()).where(
        Run.api_key_id == api_key_id,
        Run.status.in_(("queued", "running")),
        Run.external.is_(False),
        ~run_families.has_children(),
    )
    return int(session.scalar(query) or 0)


def queued_run_ids(session: Session, *, limit: int = 1000) -> list[str]:
    """Ids of internal runs waiting for a worker, oldest first."""
    query = (
        select(Run.id)
        .where(Run.status == "queued", Run.external.is_(False))
        .order_by(Run.created_at, Run.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def _update(session: Session, *where: ColumnElement[bool], **values: Any) -> bool:
    """One conditional UPDATE of runs; True if it changed a row."""
    statement = (
        update(Run).where(*where).values(**values).execution_options(synchronize_session=False)
    )
    result = session.execute(statement)
    return bool(result.rowcount)  # type: ignore[attr-defined]


def claim_run(session: Session, run_id: str, *, worker: str, now: datetime) -> int | None:
    """Move a queued run to ``running`` atomically; returns the attempt number, or None.

    None means somebody else claimed it, it was cancelled, or it does not exist: a duplicate
    delivery of the task then does nothing.
    """
    claimed = _update(
        session,
        Run.id == run_id,
        Run.status == "queued",
        Run.external.is_(False),
        Run.cancel_requested.is_(False),
        status="running",
        attempts=Run.attempts + 1,
        started_at=now,
        heartbeat_at=now,
        finished_at=None,
        worker=worker,
        error=None,
        metrics_seq=Run.metrics_seq + 1,
    )
    if not claimed:
        return None
    return session.scalar(select(Run.attempts).where(Run.id == run_id))


def _ours(run_id: str, attempt: int) -> tuple[ColumnElement[bool], ...]:
    return (Run.id == run_id, Run.status == "running", Run.attempts == attempt)


def heartbeat(session: Session, run_id: str, attempt: int, *, now: datetime) -> tuple[bool, bool]:
    """Write the heartbeat; returns ``(still_ours, cancel_requested)``.

    ``still_ours`` is False when the run left ``running`` or was claimed again (reaped and
    re-queued): the worker must stop and write nothing more.
    """
    if not _update(session, *_ours(run_id, attempt), heartbeat_at=now):
        return False, False
    cancel = session.scalar(select(Run.cancel_requested).where(Run.id == run_id))
    return True, bool(cancel)


def _dedupe(rows: Iterable[MetricRow]) -> list[dict[str, Any]]:
    """One row per (name, step), the last one winning; non-finite values become None."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for name, step, value, timestamp in rows:
        v = None if value is None or not math.isfinite(value) else float(value) + 0.0
        out[(name, step)] = {"name": name, "step": step, "value": v, "timestamp": timestamp}
    return list(out.values())


def upsert_metrics(session: Session, run_id: str, rows: Iterable[MetricRow]) -> int:
    """Insert metric values, replacing any stored at the same ``(name, step)``; returns the
    number written. Idempotent: writing the same rows twice leaves one copy."""
    values = [{"run_id": run_id, **row} for row in _dedupe(rows)]
    if not values:
        return 0
    dialect = session.get_bind().dialect.name
    statement: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        statement = postgresql.insert(RunMetric).values(values)
    elif dialect == "sqlite":
        statement = sqlite.insert(RunMetric).values(values)
    else:
        raise RuntimeError(f"unsupported database dialect {dialect!r}: use SQLite or PostgreSQL")
    upsert = statement.on_conflict_do_update(
        index_elements=["run_id", "name", "step"],
        set_={"value": statement.excluded.value, "timestamp": statement.excluded.timestamp},
    )
    session.execute(upsert)
    _update(session, Run.id == run_id, metrics_seq=Run.metrics_seq + 1)
    return len(values)


def update_attempt(session: Session, run_id: str, attempt: int, **values: Any) -> bool:
    """Set columns of a running run, if it is still this attempt's."""
    return _update(session, *_ours(run_id, attempt), **values)


def record_epoch(
    session: Session,
    run_id: str,
    attempt: int,
    *,
    rows: Sequence[MetricRow],
    epochs_done: int,
    now: datetime,
) -> bool:
    """Store one epoch's metrics and progress, if the run is still this attempt's."""
    if not _update(session, *_ours(run_id, attempt), epoch=epochs_done, heartbeat_at=now):
        return False
    upsert_metrics(session, run_id, rows)
    return True


def finish_run(session: Session, run_id: str, attempt: int, *, status: str, **values: Any) -> bool:
    """Move this attempt's running run to a final (or queued) status with ``values``."""
    return _update(
        session,
        *_ours(run_id, attempt),
        status=status,
        finished_at=values.pop("finished_at", utcnow()),
        metrics_seq=Run.metrics_seq + 1,
        **values,
    )


def release_run(session: Session, run_id: str, attempt: int) -> bool:
    """Hand this attempt's run back to the queue (a worker shutting down), dropping its
    metrics so the history is the next attempt's alone."""
    released = _update(
        session,
        *_ours(run_id, attempt),
        **_QUEUED_AGAIN,
        metrics_seq=Run.metrics_seq + 1,
    )
    if released:
        session.execute(delete(RunMetric).where(RunMetric.run_id == run_id))
    return released


def suspend_run(
    session: Session, run_id: str, attempt: int, *, checkpoint: bytes, checkpoint_epoch: int
) -> bool:
    """Hand this attempt's run back to the queue with a checkpoint after ``checkpoint_epoch``
    epochs (a worker shutting down): the next attempt resumes there. Metrics of those epochs
    are kept; any of later steps are dropped, so the next attempt writes each once."""
    suspended = _update(
        session,
        *_ours(run_id, attempt),
        **{
            **_QUEUED_AGAIN,
            "epoch": checkpoint_epoch,
            "checkpoint": checkpoint,
            "checkpoint_epoch": checkpoint_epoch,
        },
        metrics_seq=Run.metrics_seq + 1,
    )
    if suspended:
        later = and_(RunMetric.run_id == run_id, RunMetric.step >= checkpoint_epoch)
        session.execute(delete(RunMetric).where(later))
    return suspended


def get_checkpoint(session: Session, run_id: str) -> tuple[bytes | None, int | None]:
    """``(checkpoint, checkpoint_epoch)`` of a run (both None when it has none)."""
    row = session.execute(
        select(Run.checkpoint, Run.checkpoint_epoch).where(Run.id == run_id)
    ).first()
    return (None, None) if row is None else (row[0], row[1])


def set_status(session: Session, run_id: str, *, expected: str, status: str, **values: Any) -> bool:
    """Change a run's status from ``expected`` (API actions: cancel, external runs)."""
    return _update(
        session,
        Run.id == run_id,
        Run.status == expected,
        status=status,
        metrics_seq=Run.metrics_seq + 1,
        **values,
    )


def request_cancel(session: Session, run_id: str) -> bool:
    """Raise the cancel flag of a running run; the worker stops at its next batch boundary."""
    return _update(
        session,
        Run.id == run_id,
        Run.status == "running",
        cancel_requested=True,
        metrics_seq=Run.metrics_seq + 1,
    )


# -- dispatching ---------------------------------------------------------------------------------
def mark_dispatched(session: Session, run_id: str, *, now: datetime) -> bool:
    """Record that a queued run's id was handed to the broker."""
    return _update(session, Run.id == run_id, Run.status == "queued", dispatched_at=now)


def undelivered_runs(
    session: Session, *, cutoff: datetime
) -> list[Row[str, str | None, datetime | None]]:
    """``(id, queue, dispatched_at)`` of internal runs still queued although created and last
    sent before ``cutoff``: their message may never have reached the broker."""
    query = select(Run.id, Run.queue, Run.dispatched_at).where(
        Run.status == "queued",
        Run.external.is_(False),
        Run.cancel_requested.is_(False),
        Run.created_at < cutoff,
        or_(Run.dispatched_at.is_(None), Run.dispatched_at < cutoff),
    )
    return list(session.execute(query).all())


def claim_redispatch(
    session: Session, run_id: str, *, seen: datetime | None, now: datetime
) -> bool:
    """Take the right to send ``run_id`` again: one conditional UPDATE, so of several reapers
    that saw the same ``dispatched_at`` exactly one sends it."""
    unchanged = Run.dispatched_at.is_(None) if seen is None else Run.dispatched_at == seen
    return _update(session, Run.id == run_id, Run.status == "queued", unchanged, dispatched_at=now)


# -- reaping ---------------------------------------------------------------------------------------
def stale_runs(session: Session, *, cutoff: datetime) -> list[Row[str, datetime | None, int]]:
    """``(id, heartbeat_at, attempts)`` of internal running runs whose heartbeat is older than
    ``cutoff`` (or missing). Domain-validation parents have no worker and no heartbeat: they
    end with their children (:mod:`app.db.run_families`)."""
    query = select(Run.id, Run.heartbeat_at, Run.attempts).where(
        Run.status == "running",
        Run.external.is_(False),
        or_(Run.heartbeat_at < cutoff, Run.heartbeat_at.is_(None)),
        ~run_families.has_children(),
    )
    return list(session.execute(query))


def _unchanged(run_id: str, seen_heartbeat: datetime | None) -> ColumnElement[bool]:
    # Optimistic: the reaper acts only if the heartbeat it judged stale has not moved since.
    seen = (
        Run.heartbeat_at.is_(None) if seen_heartbeat is None else Run.heartbeat_at == seen_heartbeat
    )
    return and_(Run.id == run_id, Run.status == "running", seen)


def reap_run(
    session: Session, run_id: str, *, seen_heartbeat: datetime | None, error: str, now: datetime
) -> bool:
    """Fail a running run whose worker stopped sending heartbeats."""
    return _update(
        session,
        _unchanged(run_id, seen_heartbeat),
        status="failed",
        error=error,
        finished_at=now,
        metrics_seq=Run.metrics_seq + 1,
    )


def requeue_run(session: Session, run_id: str, *, seen_heartbeat: datetime | None) -> bool:
    """Put a dead worker's run back in the queue; the lost attempt's metrics are deleted, so
    the history is the next attempt's alone."""
    requeued = _update(
        session,
        _unchanged(run_id, seen_heartbeat),
        **_QUEUED_AGAIN,
        metrics_seq=Run.metrics_seq + 1,
    )
    if requeued:
        session.execute(delete(RunMetric).where(RunMetric.run_id == run_id))
    return requeued


# -- metric history --------------------------------------------------------------------------------
def list_metrics(
    session: Session,
    run_id: str,
    *,
    names: Sequence[str] | None = None,
    after: tuple[int, str | None] | None = None,
    limit: int = 1000,
) -> list[RunMetric]:
    """Metric values ordered by ``(step, name)``, strictly after the ``(step, name)`` cursor
    (``(step, None)``: after the whole step)."""
    conditions: list[ColumnElement[bool]] = [RunMetric.run_id == run_id]
    if names:
        conditions.append(RunMetric.name.in_(list(names)))
    if after is not None:
        step, name = after
        if name is None:
            conditions.append(RunMetric.step > step)
        else:
            conditions.append(
                or_(RunMetric.step > step, and_(RunMetric.step == step, RunMetric.name > name))
            )
    query = (
        select(RunMetric).where(*conditions).order_by(RunMetric.step, RunMetric.name).limit(limit)
    )
    return list(session.scalars(query))


def metric_names(session: Session, run_id: str) -> list[str]:
    """The distinct metric names a run has recorded, sorted."""
    query = (
        select(RunMetric.name).where(RunMetric.run_id == run_id).distinct().order_by(RunMetric.name)
    )
    return list(session.scalars(query))
