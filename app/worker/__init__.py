"""Training jobs: the task that trains a run, and the ways to run it.

- :mod:`app.worker.tasks` -- ``execute_run(run_id)``: claim, train, persist (runner-agnostic).
- :mod:`app.worker.celery_app` -- the production path: Celery with a Redis broker.
- :mod:`app.worker.runner` -- the embedded default: a thread pool in the API process.
- :mod:`app.worker.reaper` -- fails (or re-queues) runs whose worker stopped heartbeating.

The database is the source of truth for a run; a queue message carries only its id.
"""

from __future__ import annotations

from typing import Protocol

from app.config import Settings


class Dispatcher(Protocol):
    """Hands a committed run's id to whatever trains it."""

    def enqueue(self, run_id: str, queue: str | None) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


def make_dispatcher(settings: Settings) -> Dispatcher:
    """Celery when ``broker_url`` is set, else the in-process runner."""
    if settings.broker_url:
        from app.worker.celery_app import CeleryDispatcher

        return CeleryDispatcher(settings)
    from app.worker.runner import LocalRunner

    return LocalRunner(settings)


__all__ = ["Dispatcher", "make_dispatcher"]
