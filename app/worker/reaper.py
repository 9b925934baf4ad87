"""The reaper: no run stays ``running`` forever when its worker dies.

A running run's worker writes ``heartbeat_at`` every ``heartbeat_interval_s``. A run whose
heartbeat is older than ``heartbeat_timeout_s`` belongs to a worker that died (SIGKILL, OOM,
lost machine) or lost the database: the reaper marks it ``failed`` with the reason, or hands it
back to the queue when ``requeue_dead_runs`` is set (at most ``max_run_attempts`` claims).
Each decision is one conditional UPDATE that applies only if the heartbeat has not moved since
it was read, so several reapers (every API process and worker runs one) never conflict.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from app.config import Settings
from app.db import runs as repo
from app.db.base import utcnow
from app.db.models import Run
from app.db.session import session_scope
from app.services import domain_validation
from app.worker import Dispatcher

log = logging.getLogger(__name__)


def reap_once(settings: Settings, dispatcher: Dispatcher | None = None) -> list[tuple[str, str]]:
    """One pass; returns ``(run_id, "failed" | "requeued" | "redispatched" | "finalized")`` for
    each run acted on."""
    now = utcnow()
    timeout = settings.heartbeat_timeout_s
    with session_scope(settings) as session:
        stale = repo.stale_runs(session, cutoff=now - timedelta(seconds=timeout))
    actions: list[tuple[str, str]] = []
    for run_id, seen, attempts in stale:
        requeue = settings.requeue_dead_runs and attempts < settings.max_run_attempts
        with session_scope(settings) as session:
            if requeue and dispatcher is not None:
                if repo.requeue_run(session, run_id, seen_heartbeat=seen):
                    actions.append((run_id, "requeued"))
                    log.warning("run %s: its worker was lost; re-queued", run_id)
                continue
            last = "never" if seen is None else seen.isoformat(timespec="seconds")
            error = (
                f"the worker stopped sending heartbeats (last at {last}, timeout {timeout:g} s): "
                "it died, was killed or lost the database"
            )
            if settings.requeue_dead_runs:
                error += f"; given up after {attempts} attempts"
            if repo.reap_run(session, run_id, seen_heartbeat=seen, error=error, now=now):
                actions.append((run_id, "failed"))
                log.warning("run %s: %s", run_id, error)
    # Domain-validation parents whose last child ended without finishing them (its worker died).
    actions += domain_validation.finish_ready_parents(settings)
    if dispatcher is not None and settings.broker_url:
        actions += _redispatch_undelivered(settings, dispatcher)
    if dispatcher is not None:
        for run_id, action in actions:
            if action == "requeued":
                with session_scope(settings) as session:
                    run = session.get(Run, run_id)
                    queue = None if run is None else run.queue
                dispatcher.enqueue(run_id, queue)
    return actions


def _redispatch_undelivered(settings: Settings, dispatcher: Dispatcher) -> list[tuple[str, str]]:
    """Send again the runs still queued long after they were sent (Celery mode): the API may
    have died between committing a run and handing its id to the broker."""
    now = utcnow()
    cutoff = now - timedelta(seconds=settings.redispatch_queued_after_s)
    with session_scope(settings, write=False) as session:
        waiting = repo.undelivered_runs(session, cutoff=cutoff)
    sent: list[tuple[str, str]] = []
    for run_id, queue, seen in waiting:
        with session_scope(settings) as session:
            won = repo.claim_redispatch(session, run_id, seen=seen, now=now)
        if won:
            log.warning("run %s: still queued after it was sent; sending it again", run_id)
            dispatcher.enqueue(run_id, queue)
            sent.append((run_id, "redispatched"))
    return sent


class Reaper:
    """Runs :func:`reap_once` every ``reaper_interval_s`` in a daemon thread."""

    def __init__(self, settings: Settings, dispatcher: Dispatcher | None = None) -> None:
        self.settings = settings
        self.dispatcher = dispatcher
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="evalserve-reaper", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.reaper_interval_s):
            try:
                reap_once(self.settings, self.dispatcher)
            except Exception:
                log.exception("reaper pass failed; retrying at the next interval")

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=30)
