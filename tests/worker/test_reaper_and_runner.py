"""The reaper (dead workers' runs end failed or re-queued) and the in-process runner."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import update

from app.config import Settings
from app.db import runs as repo
from app.db.base import utcnow
from app.db.models import Run
from app.db.session import session_scope
from app.worker.reaper import Reaper, reap_once
from app.worker.runner import LocalRunner


class RecordingDispatcher:
    """Our own dispatcher protocol, recording what the reaper hands back to the queue."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str | None]] = []

    def enqueue(self, run_id: str, queue: str | None) -> None:
        self.sent.append((run_id, queue))

    def start(self) -> None: ...

    def stop(self) -> None: ...


def _status(settings: Settings, run_id: str) -> tuple[str, str | None]:
    with session_scope(settings) as session:
        run = session.get(Run, run_id)
        assert run is not None
        return run.status, run.error


def _epoch(settings: Settings, run_id: str) -> int:
    with session_scope(settings, write=False) as session:
        version = repo.run_version(session, run_id)
        assert version is not None
        return int(version[2])


def _claim_and_age(settings: Settings, run_id: str, age_s: float) -> None:
    """A run claimed by a worker whose last heartbeat was ``age_s`` ago."""
    with session_scope(settings) as session:
        assert repo.claim_run(session, run_id, worker="gone", now=utcnow()) is not None
        session.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=age_s))
        )


def _wait_status(settings: Settings, run_id: str, statuses: set[str], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while (status := _status(settings, run_id)[0]) not in statuses:
        assert time.monotonic() < deadline, f"still {status}"
        time.sleep(0.05)
    return status


def test_a_run_with_a_stale_heartbeat_is_failed_with_the_reason(
    settings: Settings, make_run: Callable[..., str]
) -> None:
    dead, alive = make_run(), make_run()
    _claim_and_age(settings, dead, 30)
    _claim_and_age(settings, alive, 0)
    actions = reap_once(settings)
    assert (dead, "failed") in actions and all(r != alive for r, _ in actions)
    status, error = _status(settings, dead)
    assert status == "failed" and "stopped sending heartbeats" in (error or "")
    assert _status(settings, alive)[0] == "running"
    assert all(r != dead for r, _ in reap_once(settings))  # reaped once only


def test_requeue_dead_runs_hands_them_back_until_attempts_run_out(
    settings: Settings, make_run: Callable[..., str]
) -> None:
    requeue = settings.model_copy(update={"requeue_dead_runs": True, "max_run_attempts": 2})
    dispatcher = RecordingDispatcher()
    run_id = make_run()
    _claim_and_age(settings, run_id, 30)
    assert (run_id, "requeued") in reap_once(requeue, dispatcher)
    assert _status(settings, run_id)[0] == "queued"
    assert dispatcher.sent == [(run_id, requeue.cpu_queue)]
    _claim_and_age(settings, run_id, 30)  # attempt 2 dies too
    assert (run_id, "failed") in reap_once(requeue, dispatcher)
    status, error = _status(settings, run_id)
    assert status == "failed" and "given up after 2 attempts" in (error or "")


def test_the_reaper_thread_reaps_on_its_interval_and_stops(
    settings: Settings, make_run: Callable[..., str]
) -> None:
    run_id = make_run()
    _claim_and_age(settings, run_id, 30)
    reaper = Reaper(settings)
    reaper.start()
    try:
        assert _wait_status(settings, run_id, {"failed"}, timeout=10) == "failed"
    finally:
        reaper.stop()


def test_the_local_runner_trains_queued_runs_from_start_and_from_enqueue(
    settings: Settings, make_run: Callable[..., str]
) -> None:
    left_over = make_run(epochs=2)
    runner = LocalRunner(settings)
    runner.enqueue(left_over, None)  # not started: the run just stays queued
    assert _status(settings, left_over)[0] == "queued"
    runner.start()
    try:
        assert _wait_status(settings, left_over, {"succeeded", "failed"}) == "succeeded"
        fresh = make_run(epochs=2)
        runner.enqueue(fresh, None)
        runner.enqueue(fresh, None)  # a duplicate is harmless
        assert _wait_status(settings, fresh, {"succeeded", "failed"}) == "succeeded"
    finally:
        runner.stop()
    with session_scope(settings) as session:
        assert session.get(Run, fresh).attempts == 1  # type: ignore[union-attr]


def test_stopping_the_local_runner_checkpoints_a_running_fit_and_leaves_it_queued(
    settings: Settings, make_run: Callable[..., str]
) -> None:
    run_id = make_run(epochs=100_000, batch_size=8)
    runner = LocalRunner(settings)
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while _epoch(settings, run_id) < 1:
            assert time.monotonic() < deadline, "no epoch completed"
            time.sleep(0.05)
    finally:
        runner.stop()
    with session_scope(settings) as session:
        run = session.get(Run, run_id)
        assert run is not None
        assert (run.status, run.attempts, run.worker) == ("queued", 1, None)
        assert run.checkpoint_epoch is not None and run.checkpoint_epoch >= 1
        assert run.epoch == run.checkpoint_epoch  # resumed there at the runner's next start
        # not by the next test's runner, which picks up every queued run of this database
        assert repo.set_status(session, run_id, expected="queued", status="cancelled")


def test_stopping_the_local_runner_fails_the_run_when_resuming_is_off(
    settings: Settings, make_run: Callable[..., str]
) -> None:
    run_id = make_run(epochs=100_000, batch_size=8)
    runner = LocalRunner(settings.model_copy(update={"resume_interrupted_runs": False}))
    runner.start()
    try:
        _wait_status(settings, run_id, {"running"})
    finally:
        runner.stop()
    status, error = _status(settings, run_id)
    assert status == "failed" and (error or "").startswith("interrupted at epoch ")


def _age(settings: Settings, run_id: str, *, created_s: float, dispatched_s: float | None) -> None:
    now = utcnow()
    dispatched = None if dispatched_s is None else now - timedelta(seconds=dispatched_s)
    with session_scope(settings) as session:
        session.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(created_at=now - timedelta(seconds=created_s), dispatched_at=dispatched)
        )


def test_runs_whose_message_never_reached_the_broker_are_sent_again_once(
    settings: Settings, make_run: Callable[..., str]
) -> None:
    celery = settings.model_copy(
        update={"broker_url": "redis://127.0.0.1:6379/0", "redispatch_queued_after_s": 60}
    )
    lost, slow, fresh, young = make_run(), make_run(), make_run(), make_run()
    _age(settings, lost, created_s=600, dispatched_s=None)  # the API died before sending
    _age(settings, slow, created_s=600, dispatched_s=300)  # sent long ago, still waiting
    _age(settings, fresh, created_s=600, dispatched_s=5)  # sent again recently
    _age(settings, young, created_s=5, dispatched_s=None)  # the API is sending it right now
    dispatcher = RecordingDispatcher()
    first = [a for a in reap_once(celery, dispatcher) if a[1] == "redispatched"]
    assert sorted(r for r, _ in first) == sorted([lost, slow])
    assert sorted(r for r, _ in dispatcher.sent) == sorted([lost, slow])
    # The send is recorded: the next pass (this or another reaper) does not send them again.
    assert [a for a in reap_once(celery, dispatcher) if a[1] == "redispatched"] == []
    assert len(dispatcher.sent) == 2


def test_the_in_process_runner_does_not_redispatch(
    settings: Settings, make_run: Callable[..., str]
) -> None:
    run_id = make_run()
    _age(settings, run_id, created_s=3600, dispatched_s=None)
    dispatcher = RecordingDispatcher()
    assert reap_once(settings, dispatcher) == [] and dispatcher.sent == []
