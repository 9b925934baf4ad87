"""Parent and child runs in the database: exactly one finalizer wins under PostgreSQL's READ
COMMITTED, the reaper leaves heartbeat-less parents alone, and deleting a parent deletes its
children (the foreign key exists on PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, delete, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from app.db import run_families
from app.db import runs as repo
from app.db.base import utcnow
from app.db.models import Run


def family(session: Session, *, child_status: str = "succeeded") -> str:
    parent = repo.create_run(session, task="binary", status="running", started_at=utcnow(), data={})
    for _ in range(2):
        repo.create_run(session, task="binary", status=child_status, data={}, parent_id=parent.id)
    return parent.id


def test_a_parent_is_finished_only_when_every_child_is_over(db_session: Session) -> None:
    parent_id = family(db_session, child_status="running")
    assert run_families.ready_parents(db_session) == []
    kwargs = {"status": "succeeded", "error": None, "summary": {}, "now": utcnow()}
    assert not run_families.finish_parent(db_session, parent_id, **kwargs)
    db_session.execute(
        Run.__table__.update().where(Run.parent_id == parent_id).values(status="cancelled")
    )
    assert run_families.ready_parents(db_session) == [parent_id]
    assert run_families.finish_parent(db_session, parent_id, **kwargs)
    assert not run_families.finish_parent(db_session, parent_id, **kwargs)
    assert run_families.ready_parents(db_session) == []


def test_the_reaper_query_skips_parents_without_heartbeat(db_session: Session) -> None:
    parent_id = family(db_session, child_status="running")
    lone = repo.create_run(db_session, task="binary", status="running", data={})
    stale = {r[0] for r in repo.stale_runs(db_session, cutoff=utcnow() + timedelta(seconds=1))}
    assert lone.id in stale and parent_id not in stale


def test_concurrent_finalizers_on_postgresql_exactly_one_wins(
    make_postgres_database: Callable[..., str],
) -> None:
    engine = create_engine(make_postgres_database(), poolclass=NullPool)
    factory = sessionmaker(engine, expire_on_commit=False)
    try:
        with factory.begin() as session:
            parent_id = family(session)
        results: dict[str, bool] = {}

        def finalize(name: str, session: Session) -> None:
            results[name] = run_families.finish_parent(
                session, parent_id, status="succeeded", error=None, summary={name: 1}, now=utcnow()
            )

        first, second = factory(), factory()
        try:
            finalize("first", first)  # holds the row lock until it commits
            thread = threading.Thread(target=finalize, args=("second", second))
            thread.start()
            time.sleep(0.3)
            assert thread.is_alive()  # waiting for the first's row lock
            first.commit()
            thread.join(timeout=10)
            second.commit()
        finally:
            first.close()
            second.close()
        # READ COMMITTED re-checks the WHERE clause on the committed row: status is no longer
        # 'running', so the second UPDATE matched nothing.
        assert results == {"first": True, "second": False}
        with factory() as session:
            row = session.get(Run, parent_id)
            assert row is not None and row.summary == {"first": 1}
    finally:
        engine.dispose()


def test_deleting_a_parent_deletes_its_children_on_postgresql(
    make_postgres_database: Callable[..., str],
) -> None:
    engine = create_engine(make_postgres_database(), poolclass=NullPool)
    try:
        with sessionmaker(engine).begin() as session:
            parent_id = family(session)
            session.execute(delete(Run).where(Run.id == parent_id))
            left = session.scalars(select(Run.id).where(Run.parent_id == parent_id)).all()
            assert left == []
    finally:
        engine.dispose()


@pytest.mark.parametrize("status", ["queued", "running"])
def test_cancelling_children_stops_queued_ones_at_once(db_session: Session, status: str) -> None:
    parent_id = family(db_session, child_status=status)
    run_families.cancel_children(db_session, parent_id, now=utcnow())
    rows = db_session.execute(
        select(Run.status, Run.cancel_requested).where(Run.parent_id == parent_id)
    ).all()
    expected = ("cancelled", True) if status == "queued" else ("running", True)
    assert [tuple(r) for r in rows] == [expected, expected]
