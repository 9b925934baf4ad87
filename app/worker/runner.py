"""The embedded job runner: without a broker, the API process trains runs in a thread pool.

It runs the same task function as a Celery worker. The database is the queue: on start the
runner picks up every run still ``queued`` (left over by a restart), and each claim is atomic,
so several API processes sharing a database never train a run twice. On stop (the app's
shutdown), running fits stop at their next batch boundary and are checkpointed at their last
complete epoch and left queued, to resume at the next start (failed instead, with the epoch
they reached, when ``resume_interrupted_runs`` is off or attempts run out); runs not yet
started stay queued for the next start.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from app.config import Settings
from app.db import runs as repo
from app.db.session import session_scope
from app.errors import EvalserveError
from app.worker.tasks import execute_run, worker_name

log = logging.getLogger(__name__)


class LocalRunner:
    """A small thread pool executing :func:`app.worker.tasks.execute_run`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._executor: ThreadPoolExecutor | None = None
        self._stop = threading.Event()
        self._pending: set[str] = set()
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._executor is not None

    def start(self) -> None:
        """Start the pool and pick up the runs left queued."""
        with self._lock:
            if self._executor is not None:
                return
            self._stop.clear()
            self._executor = ThreadPoolExecutor(
                max_workers=self.settings.worker_concurrency, thread_name_prefix="evalserve-run"
            )
        try:
            with session_scope(self.settings) as session:
                queued = repo.queued_run_ids(session)
        except EvalserveError:
            log.warning("could not read the queued runs; they start with the next one")
            return
        for run_id in queued:
            self.enqueue(run_id, None)

    def enqueue(self, run_id: str, queue: str | None) -> None:
        """Train ``run_id`` in the pool; without a started pool the run stays queued."""
        with self._lock:
            if self._executor is None:
                log.info("runner not started: run %s stays queued until it is", run_id)
                return
            if run_id in self._pending:
                return
            self._pending.add(run_id)
            self._executor.submit(self._execute, run_id)

    def _execute(self, run_id: str) -> None:
        try:
            outcome = execute_run(
                run_id,
                settings=self.settings,
                stop_event=self._stop,
                worker=worker_name("local"),
            )
            log.info("run %s: %s", run_id, outcome)
        except Exception:
            log.exception("run %s: the task raised", run_id)
        finally:
            with self._lock:
                self._pending.discard(run_id)

    def stop(self) -> None:
        """Stop running fits at their next batch boundary (checkpointed, see the module) and
        wait for the threads."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is None:
            return
        self._stop.set()
        executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._pending.clear()
