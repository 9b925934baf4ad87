"""The Celery wiring without a worker: configuration, the dispatcher's failure path, the CLI."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.cli import main
from app.config import Settings
from app.db.models import Run
from app.db.session import session_scope
from app.worker import make_dispatcher
from app.worker.celery_app import TASK_NAME, CeleryDispatcher, celery_app, make_celery
from app.worker.runner import LocalRunner


def test_workers_take_one_job_at_a_time_and_acknowledge_it_late() -> None:
    settings = Settings(
        broker_url="redis://127.0.0.1:6379/0", run_time_limit_s=600, visibility_timeout_s=3600
    )
    conf = make_celery(settings).conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1 and conf.worker_concurrency == 1
    assert conf.broker_transport_options["visibility_timeout"] == 3600
    assert (conf.task_soft_time_limit, conf.task_time_limit) == (630, 660)
    assert TASK_NAME in celery_app.tasks


def test_the_visibility_timeout_must_outlast_the_longest_run() -> None:
    with pytest.raises(ValueError, match="visibility_timeout_s"):
        Settings(run_time_limit_s=3600, visibility_timeout_s=3600)
    with pytest.raises(ValueError, match="heartbeat_timeout_s"):
        Settings(heartbeat_interval_s=10, heartbeat_timeout_s=15)


def test_the_broker_setting_picks_celery_or_the_in_process_runner() -> None:
    assert isinstance(make_dispatcher(Settings()), LocalRunner)
    assert isinstance(make_dispatcher(Settings(broker_url="redis://x:1/0")), CeleryDispatcher)


def test_an_unreachable_broker_fails_the_run_with_a_clear_reason(
    settings: Settings, make_run: Callable[..., str]
) -> None:
    run_id = make_run()
    dispatcher = CeleryDispatcher(
        settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    )
    try:
        dispatcher.enqueue(run_id, settings.cpu_queue)
    finally:
        dispatcher.stop()
    with session_scope(settings) as session:
        run = session.get(Run, run_id)
        assert run is not None
        assert run.status == "failed" and "broker" in (run.error or "")


def test_evalserve_worker_needs_a_broker(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("EVALSERVE_BROKER_URL", raising=False)
    from app.config import get_settings

    get_settings.cache_clear()
    try:
        assert main(["worker"]) == 2
    finally:
        get_settings.cache_clear()
    assert "EVALSERVE_BROKER_URL" in capsys.readouterr().err
