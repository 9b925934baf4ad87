"""The production job path: Celery with a Redis broker (``EVALSERVE_BROKER_URL``).

A message carries only a run id; the database holds the run. Workers take one job at a time
(``prefetch 1``) and acknowledge it only when it is done (``acks_late``), so a worker that dies
does not lose its job silently: Redis redelivers an unacknowledged message after the
visibility timeout, which is longer than the longest allowed run, and the redelivered task's
atomic claim turns a duplicate into a no-op. Time limits: the task stops itself at
``run_time_limit_s`` (the run fails with that reason); Celery's soft and hard limits, 30 and
60 s later, are the backstop. Runs with device ``auto``/``cuda`` go to the GPU queue, device
``cpu`` to the CPU queue.

Warm shutdown (SIGTERM, e.g. ``docker stop``): the running fit stops at its next batch, is
checkpointed at its last complete epoch and queued again, and its task is sent again before
the worker exits, so another worker (or this one, restarted) resumes it there.

Start a worker with ``evalserve worker`` (or ``celery -A app.worker.celery_app worker``).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
from typing import Any

from celery import Celery, Task
from celery.signals import worker_ready, worker_shutdown, worker_shutting_down

from app.config import Settings, get_settings
from app.db import runs as repo
from app.db.base import utcnow
from app.db.session import session_scope
from app.worker.inspection_tasks import register_celery_task as register_inspection_task
from app.worker.reaper import Reaper
from app.worker.tasks import execute_run

log = logging.getLogger(__name__)

TASK_NAME = "evalserve.train_run"


class SharedFlag:
    """A flag in shared memory, made before the pool forks: set in the worker's main process,
    seen by its prefork children (a ``threading.Event`` would be a copy per process). No lock:
    it is set from a signal handler, which in a solo pool may interrupt a reader in the same
    thread, and a lock held there would deadlock (``multiprocessing.Event`` takes one)."""

    def __init__(self) -> None:
        self._value = multiprocessing.get_context("fork").RawValue(ctypes.c_bool, False)

    def set(self) -> None:
        self._value.value = True

    def is_set(self) -> bool:
        return bool(self._value.value)


#: Set when this worker begins a warm shutdown (Celery signals it in the main process only):
#: running fits stop at the next batch and are checkpointed.
_shutting_down = SharedFlag()


def make_celery(settings: Settings) -> Celery:
    """A Celery app configured from ``settings`` (used to send tasks and to run workers)."""
    app = Celery("evalserve", broker=settings.broker_url, backend=settings.result_backend_url)
    transport = {"visibility_timeout": int(settings.visibility_timeout_s)}
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=settings.worker_concurrency,
        task_default_queue=settings.cpu_queue,
        task_create_missing_queues=True,
        task_ignore_result=settings.result_backend_url is None,
        task_soft_time_limit=settings.run_time_limit_s + 30,
        task_time_limit=settings.run_time_limit_s + 60,
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
    )
    return app


celery_app = make_celery(get_settings())
celery = celery_app  # the name `celery -A app.worker.celery_app` looks for
register_inspection_task(celery_app)  # evalserve.inspect: inspections of trained runs


@celery_app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True)
def train_run(self: Task, run_id: str) -> str:
    """Train one run (see :func:`app.worker.tasks.execute_run`)."""
    host = self.request.hostname or "celery"
    outcome = execute_run(
        run_id,
        settings=get_settings(),
        stop_event=_shutting_down,
        worker=f"celery:{host}:{os.getpid()}",
    )
    if outcome == "queued":  # handed back at shutdown: let another worker take it
        queue = (self.request.delivery_info or {}).get("routing_key")
        self.app.send_task(TASK_NAME, args=[run_id], queue=queue)
    return outcome


def send_job(app: Celery, task: str, job_id: str, queue: str) -> None:
    """Hand a job id (a run, an inspection) to the broker, retrying briefly while it is away
    (a restart); raises if it stays unreachable."""
    app.send_task(
        task,
        args=[job_id],
        queue=queue,
        retry=True,
        retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
    )


class CeleryDispatcher:
    """Sends run ids to the workers. A broker that cannot be reached fails the run with a
    clear reason rather than leaving it queued forever."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = make_celery(settings)

    def start(self) -> None:
        return None

    def enqueue(self, run_id: str, queue: str | None) -> None:
        try:
            send_job(self.app, TASK_NAME, run_id, queue or self.settings.gpu_queue)
            with session_scope(self.settings) as session:
                repo.mark_dispatched(session, run_id, now=utcnow())
        except Exception:
            log.exception("run %s: could not be sent to the broker", run_id)
            with session_scope(self.settings) as session:
                repo.set_status(
                    session,
                    run_id,
                    expected="queued",
                    status="failed",
                    finished_at=utcnow(),
                    error="the job queue (broker) could not be reached; submit the run again",
                )

    def stop(self) -> None:
        self.app.close()


# -- the worker process's own reaper --------------------------------------------------------------
_reaper: Reaper | None = None


@worker_ready.connect
def _start_reaper(**_: Any) -> None:
    global _reaper
    settings = get_settings()
    _reaper = Reaper(settings, CeleryDispatcher(settings))
    _reaper.start()


@worker_shutting_down.connect
def _stop_fits(**_: Any) -> None:
    _shutting_down.set()


@worker_shutdown.connect
def _stop_reaper(**_: Any) -> None:
    if _reaper is not None:
        _reaper.stop()
