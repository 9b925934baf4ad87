"""Inspection jobs on the workers: atomic claims, the kind registry, the reaper, Celery wiring."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from typing import Any

import pytest
import redis
from pydantic import BaseModel
from sqlalchemy import update

from app.config import Settings
from app.db import inspections as repo
from app.db.base import utcnow
from app.db.models import Inspection
from app.db.session import session_scope
from app.errors import InvalidInput
from app.services.inspections import KINDS, InspectionKind, RunArtifacts, register_kind
from app.worker.celery_app import celery_app
from app.worker.inspection_tasks import (
    TASK_NAME,
    CeleryInspectionDispatcher,
    LocalInspectionRunner,
    execute_inspection,
    make_inspection_dispatcher,
    reap_once,
    redispatch_undelivered,
)


class _Body(BaseModel):
    value: int = 0


def _echo(art: RunArtifacts, params: Mapping[str, Any]) -> dict[str, Any]:
    if params.get("fail"):
        raise InvalidInput("was asked to fail", field="value")
    return {"echo": params["value"], "run": art.run.id, "task": art.task}


@pytest.fixture
def echo_kind() -> Iterator[str]:
    """A test kind registered like any other: its execute returns its params."""
    register_kind(InspectionKind("test_echo", _Body, lambda s, r, b: b.model_dump(), _echo))
    try:
        yield "test_echo"
    finally:
        del KINDS["test_echo"]


def _inspection(settings: Settings, run_id: str, kind: str, **params: Any) -> str:
    with session_scope(settings) as session:
        return repo.create(session, run_id=run_id, kind=kind, params=params).id


def _row(settings: Settings, inspection_id: str) -> Inspection:
    with session_scope(settings, write=False) as session:
        row = repo.get(session, inspection_id)
        assert row is not None
        return row


def test_a_job_runs_once_and_a_duplicate_delivery_does_nothing(
    settings: Settings, make_run: Callable[..., str], echo_kind: str
) -> None:
    run_id = make_run()
    inspection_id = _inspection(settings, run_id, echo_kind, value=7)
    assert execute_inspection(inspection_id, settings=settings) == "succeeded"
    assert execute_inspection(inspection_id, settings=settings) == "skipped"
    row = _row(settings, inspection_id)
    assert row.status == "succeeded" and row.attempts == 1
    assert row.result == {"echo": 7, "run": run_id, "task": "binary"}
    assert row.started_at is not None and row.finished_at is not None


def test_a_job_that_raises_is_failed_with_the_reason(
    settings: Settings, make_run: Callable[..., str], echo_kind: str
) -> None:
    inspection_id = _inspection(settings, make_run(), echo_kind, value=1, fail=True)
    assert execute_inspection(inspection_id, settings=settings) == "failed"
    row = _row(settings, inspection_id)
    assert row.error == "value: was asked to fail" and row.result is None


def test_the_reaper_fails_jobs_whose_heartbeat_stopped_and_only_those(
    settings: Settings, make_run: Callable[..., str], echo_kind: str
) -> None:
    run_id = make_run()
    dead, alive = (_inspection(settings, run_id, echo_kind, value=0) for _ in range(2))
    long_ago = utcnow() - timedelta(seconds=10 * settings.heartbeat_timeout_s)
    with session_scope(settings) as session:
        assert repo.claim(session, dead, worker="w", now=long_ago) == 1
        assert repo.claim(session, alive, worker="w", now=utcnow()) == 1
    assert dead in reap_once(settings) and alive not in reap_once(settings)
    row = _row(settings, dead)
    assert row.status == "failed" and "heartbeats" in (row.error or "")
    assert _row(settings, alive).status == "running"
    # The worker that lost its job writes nothing more.
    with session_scope(settings) as session:
        assert not repo.finish(session, dead, 1, status="succeeded", now=utcnow(), result={})


def test_the_local_runner_picks_up_jobs_left_queued(
    settings: Settings, make_run: Callable[..., str], echo_kind: str
) -> None:
    inspection_id = _inspection(settings, make_run(), echo_kind, value=3)
    runner = LocalInspectionRunner(settings)
    runner.start()
    runner.stop()  # waits for the submitted jobs
    assert _row(settings, inspection_id).result == {
        "echo": 3,
        "run": _row(settings, inspection_id).run_id,
        "task": "binary",
    }


def test_celery_workers_know_the_task_and_the_broker_setting_picks_the_dispatcher() -> None:
    assert TASK_NAME in celery_app.tasks
    assert isinstance(make_inspection_dispatcher(Settings()), LocalInspectionRunner)
    celery = make_inspection_dispatcher(Settings(broker_url="redis://x:1/0"))
    assert isinstance(celery, CeleryInspectionDispatcher)
    celery.stop()


def test_an_unreachable_broker_fails_the_inspection_with_a_clear_reason(
    settings: Settings, make_run: Callable[..., str], echo_kind: str
) -> None:
    inspection_id = _inspection(settings, make_run(), echo_kind, value=0)
    dispatcher = CeleryInspectionDispatcher(
        settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    )
    try:
        dispatcher.enqueue(inspection_id, settings.cpu_queue)
    finally:
        dispatcher.stop()
    row = _row(settings, inspection_id)
    assert row.status == "failed" and "broker" in (row.error or "")


class _Recording:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str | None]] = []

    def enqueue(self, inspection_id: str, queue: str | None) -> None:
        self.sent.append((inspection_id, queue))

    def start(self) -> None: ...

    def stop(self) -> None: ...


def test_inspections_whose_message_never_reached_the_broker_are_sent_again_once(
    settings: Settings, make_run: Callable[..., str], echo_kind: str
) -> None:
    settings = settings.model_copy(update={"redispatch_queued_after_s": 60})
    run_id = make_run()
    lost, slow, fresh, young, done = (
        _inspection(settings, run_id, echo_kind, value=0) for _ in range(5)
    )
    now = utcnow()
    ages = {
        lost: (600, None),
        slow: (600, 300),
        fresh: (600, 5),
        young: (5, None),
        done: (600, None),
    }
    with session_scope(settings) as session:
        for inspection_id, (created_s, dispatched_s) in ages.items():
            session.execute(
                update(Inspection)
                .where(Inspection.id == inspection_id)
                .values(
                    created_at=now - timedelta(seconds=created_s),
                    dispatched_at=None
                    if dispatched_s is None
                    else now - timedelta(seconds=dispatched_s),
                )
            )
    assert execute_inspection(done, settings=settings) == "succeeded"
    dispatcher = _Recording()
    assert sorted(redispatch_undelivered(settings, dispatcher)) == sorted([lost, slow])
    assert sorted(i for i, _ in dispatcher.sent) == sorted([lost, slow])
    # The send is recorded: the next pass (this or another API's reaper) sends nothing.
    assert redispatch_undelivered(settings, dispatcher) == []


def test_a_sent_inspection_records_when_it_was_handed_to_the_broker(
    settings: Settings, make_run: Callable[..., str], echo_kind: str
) -> None:
    inspection_id = _inspection(settings, make_run(), echo_kind, value=0)
    assert _row(settings, inspection_id).dispatched_at is None
    dispatcher = CeleryInspectionDispatcher(
        settings.model_copy(update={"broker_url": "redis://127.0.0.1:6379/0"})
    )
    try:
        dispatcher.enqueue(inspection_id, "evalserve-test-unconsumed")
    finally:
        dispatcher.stop()
        redis.Redis(host="127.0.0.1", port=6379).delete("evalserve-test-unconsumed")
    row = _row(settings, inspection_id)
    assert row.status == "queued" and row.dispatched_at is not None
