"""Inspection jobs on the training workers: the task, its dispatchers and its reaper.

Like runs (:mod:`app.worker.tasks`): a message carries only the inspection id; the task claims
the row atomically (``queued -> running``, a duplicate delivery finds nothing to claim), writes
a heartbeat while it works, and stores the result or the reason it failed, conditional on its
attempt. Without a broker a small in-process pool runs them (the embedded default); with one,
the Celery task ``evalserve.inspect`` on the run's queue (GPU queue for GPU runs). A reaper
fails the running inspections whose heartbeat stopped (their worker died).
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, Final, Protocol

import orjson

from app.config import Settings, get_settings
from app.db import inspections as repo
from app.db import runs as runs_repo
from app.db.base import utcnow
from app.db.session import get_sessionmaker, session_scope
from app.errors import EvalserveError
from app.services import inspection_kinds  # noqa: F401 - registers the tabular kinds
from app.services.inspections import KINDS, artifacts
from app.worker.tasks import worker_name

log = logging.getLogger(__name__)

TASK_NAME: Final = "evalserve.inspect"
_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def execute_inspection(
    inspection_id: str, *, settings: Settings | None = None, worker: str | None = None
) -> str:
    """Run the inspection if it is still queued; returns its final status, ``skipped`` when
    there was nothing to claim, ``lost`` when the reaper took it over."""
    settings = settings or get_settings()
    factory = get_sessionmaker(settings, write=True)
    with session_scope(factory=factory) as session:
        attempt = repo.claim(session, inspection_id, worker=worker or worker_name(), now=utcnow())
    if attempt is None:
        return "skipped"
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(settings.heartbeat_interval_s):
            try:
                with session_scope(factory=factory) as session:
                    repo.heartbeat(session, inspection_id, attempt, now=utcnow())
            except Exception:
                log.warning("heartbeat of inspection %s failed", inspection_id, exc_info=True)

    thread = threading.Thread(target=beat, name=f"inspect-{inspection_id[:8]}", daemon=True)
    thread.start()
    result: dict[str, Any] | None = None
    error: str | None = None
    try:
        # A read-only session (on SQLite no write lock is held while the model runs).
        with session_scope(factory=get_sessionmaker(settings), write=False) as session:
            row = repo.get(session, inspection_id)
            assert row is not None
            run = runs_repo.get_run(session, row.run_id)
            assert run is not None
            kind = KINDS[row.kind]
            raw = kind.execute(artifacts(session, run), row.params)
            # One pass through orjson: numpy values become numbers, NaN and inf null.
            result = orjson.loads(orjson.dumps(raw, option=_OPTS))
    except EvalserveError as exc:
        error = str(exc)
    except Exception as exc:
        log.exception("inspection %s failed", inspection_id)
        error = f"internal error in the worker: {type(exc).__name__}: {exc}"[:10_000]
    finally:
        stop.set()
        thread.join(timeout=10)
    status = "succeeded" if error is None else "failed"
    with session_scope(factory=factory) as session:
        done = repo.finish(
            session, inspection_id, attempt, status=status, now=utcnow(), result=result, error=error
        )
    return status if done else "lost"


def reap_once(settings: Settings) -> list[str]:
    """Fail running inspections whose heartbeat is older than ``heartbeat_timeout_s``."""
    now = utcnow()
    timeout = settings.heartbeat_timeout_s
    with session_scope(settings) as session:
        stale = repo.stale(session, cutoff=now - timedelta(seconds=timeout))
    failed = []
    for inspection_id, seen in stale:
        last = "never" if seen is None else seen.isoformat(timespec="seconds")
        error = f"the worker stopped sending heartbeats (last at {last}, timeout {timeout:g} s)"
        with session_scope(settings) as session:
            if repo.reap(session, inspection_id, seen=seen, error=error, now=now):
                failed.append(inspection_id)
                log.warning("inspection %s: %s", inspection_id, error)
    return failed


def redispatch_undelivered(settings: Settings, dispatcher: InspectionDispatcher) -> list[str]:
    """Send again the inspections still queued long after they were sent (Celery mode): the API
    may have died between committing one and handing its id to the broker. A duplicate
    delivery is harmless (the claim is atomic)."""
    now = utcnow()
    cutoff = now - timedelta(seconds=settings.redispatch_queued_after_s)
    with session_scope(settings, write=False) as session:
        waiting = repo.undelivered(session, cutoff=cutoff)
    sent = []
    for inspection_id, queue, seen in waiting:
        with session_scope(settings) as session:
            won = repo.claim_redispatch(session, inspection_id, seen=seen, now=now)
        if won:
            log.warning(
                "inspection %s: still queued after it was sent; sending it again", inspection_id
            )
            dispatcher.enqueue(inspection_id, queue)
            sent.append(inspection_id)
    return sent


class InspectionDispatcher(Protocol):
    def enqueue(self, inspection_id: str, queue: str | None) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class _ReaperThread:
    """:func:`reap_once` every ``reaper_interval_s``; with a broker also
    :func:`redispatch_undelivered` through ``dispatcher``."""

    def __init__(self, settings: Settings, dispatcher: InspectionDispatcher | None = None) -> None:
        self.settings = settings
        self.dispatcher = dispatcher
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._loop, name="evalserve-inspection-reaper", daemon=True
            )
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.reaper_interval_s):
            try:
                reap_once(self.settings)
                if self.dispatcher is not None:
                    redispatch_undelivered(self.settings, self.dispatcher)
            except Exception:
                log.exception("inspection reaper pass failed; retrying at the next interval")

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout=30)


class LocalInspectionRunner:
    """The embedded default: a thread pool in the API process (``worker_concurrency`` threads),
    which picks up the inspections left queued when it starts."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._reaper = _ReaperThread(settings)

    def start(self) -> None:
        with self._lock:
            if self._executor is not None:
                return
            self._executor = ThreadPoolExecutor(
                max_workers=self.settings.worker_concurrency, thread_name_prefix="evalserve-inspect"
            )
        self._reaper.start()
        try:
            with session_scope(self.settings) as session:
                queued = repo.queued_ids(session)
        except EvalserveError:
            log.warning("could not read the queued inspections")
            return
        for inspection_id in queued:
            self.enqueue(inspection_id, None)

    def enqueue(self, inspection_id: str, queue: str | None) -> None:
        with self._lock:
            if self._executor is None:
                log.info("runner not started: inspection %s stays queued", inspection_id)
                return
            self._executor.submit(self._execute, inspection_id)

    def _execute(self, inspection_id: str) -> None:
        try:
            outcome = execute_inspection(
                inspection_id, settings=self.settings, worker=worker_name("local")
            )
            log.info("inspection %s: %s", inspection_id, outcome)
        except Exception:
            log.exception("inspection %s: the task raised", inspection_id)

    def stop(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        self._reaper.stop()
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


class CeleryInspectionDispatcher:
    """Sends inspection ids to the Celery workers; a broker that cannot be reached fails the
    inspection with a clear reason. The API process runs the reaper."""

    def __init__(self, settings: Settings) -> None:
        from app.worker.celery_app import make_celery

        self.settings = settings
        self.app = make_celery(settings)
        self._reaper = _ReaperThread(settings, self)

    def start(self) -> None:
        self._reaper.start()

    def enqueue(self, inspection_id: str, queue: str | None) -> None:
        try:
            from app.worker.celery_app import send_job  # celery_app imports this module

            send_job(self.app, TASK_NAME, inspection_id, queue or self.settings.gpu_queue)
            with session_scope(self.settings) as session:
                repo.mark_dispatched(session, inspection_id, now=utcnow())
        except Exception:
            log.exception("inspection %s: could not be sent to the broker", inspection_id)
            with session_scope(self.settings) as session:
                attempt = repo.claim(session, inspection_id, worker="dispatcher", now=utcnow())
                if attempt is not None:
                    repo.finish(
                        session,
                        inspection_id,
                        attempt,
                        status="failed",
                        now=utcnow(),
                        error="the job queue (broker) could not be reached; submit it again",
                    )

    def stop(self) -> None:
        self._reaper.stop()
        self.app.close()


def make_inspection_dispatcher(settings: Settings) -> InspectionDispatcher:
    """Celery when ``broker_url`` is set, else the in-process runner."""
    if settings.broker_url:
        return CeleryInspectionDispatcher(settings)
    return LocalInspectionRunner(settings)


def register_celery_task(app: Any) -> None:
    """Define ``evalserve.inspect`` on a Celery app (called by :mod:`app.worker.celery_app`)."""

    @app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True)
    def inspect(self: Any, inspection_id: str) -> str:
        host = self.request.hostname or "celery"
        return execute_inspection(
            inspection_id, settings=get_settings(), worker=f"celery:{host}:{os.getpid()}"
        )
