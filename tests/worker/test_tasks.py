"""The task function on a real database: claim, per-epoch metrics, result, failures, cancel."""

from __future__ import annotations

import io
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from sqlalchemy import func, select

from app.config import Settings
from app.db import runs as repo
from app.db.base import utcnow
from app.db.models import Evaluation, Run, RunMetric
from app.db.session import session_scope
from app.services.runs import RUN_METRICS
from app.training import TrainingSpec, load_model, predict
from app.worker.tasks import execute_run


def _run(settings: Settings, run_id: str, *, with_state: bool = False) -> Run:
    with session_scope(settings) as session:
        run = repo.get_run(session, run_id, with_state=with_state)
        assert run is not None
        return run


def _metrics(settings: Settings, run_id: str) -> list[RunMetric]:
    with session_scope(settings) as session:
        return repo.list_metrics(session, run_id, limit=100_000)


def _wait(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_run_records_every_epochs_metrics_and_stores_weights_report_and_calibration(
    settings: Settings, make_run: Callable[..., str]
) -> None:
    run_id = make_run(epochs=4)
    assert execute_run(run_id, settings=settings) == "succeeded"

    run = _run(settings, run_id, with_state=True)
    assert (run.status, run.epoch, run.total_epochs, run.attempts) == ("succeeded", 4, 4, 1)
    assert run.device == "cpu" and run.error is None
    assert run.started_at is not None and run.finished_at is not None

    rows = _metrics(settings, run_id)
    by_step: dict[int, dict[str, float | None]] = {}
    for m in rows:
        by_step.setdefault(m.step, {})[m.name] = m.value
    assert sorted(by_step) == [0, 1, 2, 3]
    expected = {
        "train_loss",
        "train_penalty",
        "train_total",
        "val_loss",
        "lr",
        "epoch_time_s",
        "samples_per_s",
        "grad_norm/hidden0",
        "grad_norm/output",
        *RUN_METRICS["binary"],
    }
    for values in by_step.values():
        assert expected <= set(values)
        assert all(v is None or math.isfinite(v) for v in values.values())
    assert by_step[3]["train_loss"] < by_step[0]["train_loss"]

    with session_scope(settings) as session:
        evaluation = session.get(Evaluation, run.evaluation_id)
        assert evaluation is not None
        assert evaluation.task == "binary" and evaluation.model == f"run:{run_id}"
        assert evaluation.n_samples == run.summary["n_val"] == 40

    summary = run.summary
    assert summary["epochs_completed"] == 4 and summary["has_weights"]
    assert summary["final_metrics"]["roc_auc"] == pytest.approx(evaluation.roc_auc)
    assert summary["calibration"]["method"] == "temperature"
    assert summary["calibration"]["temperature"] > 0
    threshold = summary["recommended_threshold"]
    assert threshold["objective"] == "f1" and 0 < threshold["threshold"] < 1

    state = torch.load(io.BytesIO(run.state_dict), weights_only=True)
    spec = TrainingSpec.from_dict(run.spec)
    out = predict(load_model(spec, 4, state), spec, np.eye(4, dtype=np.float32))
    assert out.shape == (4,) and np.isfinite(out).all()


def test_a_duplicate_delivery_does_nothing(
    settings: Settings, make_run: Callable[..., str]
) -> None:
    run_id = make_run(epochs=2)
    assert execute_run(run_id, settings=settings) == "succeeded"
    n_metrics = len(_metrics(settings, run_id))
    assert execute_run(run_id, settings=settings) == "skipped"
    assert _run(settings, run_id).attempts == 1
    assert len(_metrics(settings, run_id)) == n_metrics


def test_concurrent_claims_of_one_run_let_exactly_one_worker_win(
    settings: Settings, make_run: Callable[..., str]
) -> None:
    run_id = make_run()

    def claim(i: int) -> int | None:
        with session_scope(settings) as session:
            return repo.claim_run(session, run_id, worker=f"w{i}", now=utcnow())

    with ThreadPoolExecutor(4) as pool:
        attempts = list(pool.map(claim, range(4)))
    assert sorted(a for a in attempts if a is not None) == [1]
    assert attempts.count(None) == 3


def test_metric_writes_are_idempotent_upserts(
    settings: Settings, make_run: Callable[..., str]
) -> None:
    run_id = make_run()
    now = utcnow()
    rows = [("loss", 0, 1.0, now), ("loss", 1, 0.5, now), ("acc", 0, float("nan"), now)]
    with session_scope(settings) as session:
        repo.upsert_metrics(session, run_id, rows)
    with session_scope(settings) as session:  # a retried write, with one value corrected
        repo.upsert_metrics(session, run_id, [*rows[:1], ("loss", 1, 0.25, now), rows[2]])
    stored = {(m.name, m.step): m.value for m in _metrics(settings, run_id)}
    assert stored == {("acc", 0): None, ("loss", 0): 1.0, ("loss", 1): 0.25}


def test_a_diverging_run_fails_with_the_loops_message_and_stores_no_nan(
    settings: Settings, make_run: Callable[..., str]
) -> None:
    X = np.random.default_rng(1).normal(size=(64, 3)) * 1e3
    run_id = make_run(
        task="regression",
        data={"X": X.tolist(), "y": (X[:, 0] * 1e3).tolist()},
        optimizer={"name": "sgd", "lr": 1e3},
        epochs=20,
    )
    assert execute_run(run_id, settings=settings) == "failed"
    run = _run(settings, run_id)
    assert run.status == "failed" and "non-finite loss" in (run.error or "")
    assert all(m.value is None or math.isfinite(m.value) for m in _metrics(settings, run_id))


def test_cancel_stops_a_running_job_at_a_batch_boundary(
    settings: Settings, make_run: Callable[..., str]
) -> None:
    run_id = make_run(epochs=100_000, batch_size=8)
    outcome: list[str] = []
    thread = threading.Thread(target=lambda: outcome.append(execute_run(run_id, settings=settings)))
    thread.start()
    _wait(lambda: _run(settings, run_id).epoch >= 1)
    with session_scope(settings) as session:
        assert repo.request_cancel(session, run_id)
    thread.join(timeout=30)
    assert outcome == ["cancelled"]
    run = _run(settings, run_id)
    assert run.status == "cancelled" and run.summary["stopped"] == "cancelled"
    assert 1 <= run.epoch < 100_000 and run.summary["has_weights"]


def test_a_run_past_its_time_limit_fails_with_the_reason(
    settings: Settings, make_run: Callable[..., str]
) -> None:
    limited = settings.model_copy(update={"run_time_limit_s": 0.5})
    run_id = make_run(epochs=100_000, batch_size=8)
    assert execute_run(run_id, settings=limited) == "failed"
    assert "time limit of 0.5 s" in (_run(settings, run_id).error or "")


def test_a_worker_shutting_down_fails_its_run_or_hands_it_back(
    settings: Settings, make_run: Callable[..., str]
) -> None:
    stop = threading.Event()
    stop.set()
    run_id = make_run(epochs=5)
    no_resume = settings.model_copy(update={"resume_interrupted_runs": False})
    assert execute_run(run_id, settings=no_resume, stop_event=stop) == "failed"
    error = _run(settings, run_id).error or ""
    assert "interrupted at epoch 0 of 5: the worker shut down" in error
    assert "EVALSERVE_RESUME_INTERRUPTED_RUNS is off" in error

    requeue = settings.model_copy(update={"requeue_dead_runs": True})
    run_id = make_run(epochs=5)
    assert execute_run(run_id, settings=requeue, stop_event=stop) == "queued"
    run = _run(settings, run_id)
    assert (run.status, run.epoch, run.attempts) == ("queued", 0, 1)
    assert execute_run(run_id, settings=requeue) == "succeeded"
    assert _run(settings, run_id).attempts == 2


def test_a_worker_whose_run_was_reaped_writes_nothing_more(
    settings: Settings, make_run: Callable[..., str]
) -> None:
    run_id = make_run()
    with session_scope(settings) as session:
        attempt = repo.claim_run(session, run_id, worker="w", now=utcnow())
    assert attempt == 1
    with session_scope(settings) as session:
        run = session.get(Run, run_id)
        assert run is not None
        assert repo.reap_run(
            session, run_id, seen_heartbeat=run.heartbeat_at, error="dead", now=utcnow()
        )
    with session_scope(settings) as session:
        assert not repo.record_epoch(
            session, run_id, attempt, rows=[("x", 0, 1.0, utcnow())], epochs_done=1, now=utcnow()
        )
        assert repo.heartbeat(session, run_id, attempt, now=utcnow()) == (False, False)
        assert not repo.finish_run(session, run_id, attempt, status="succeeded")
    run = _run(settings, run_id)
    assert (run.status, run.error) == ("failed", "dead")
    assert _metrics(settings, run_id) == []


@pytest.mark.parametrize(
    ("task", "y_fn", "extra"),
    [
        ("multiclass", lambda X: (X[:, 0] > 0).astype(int) + (X[:, 1] > 0).astype(int), {}),
        ("regression", lambda X: X[:, 0] * 2.0 + 1.0, {"loss": {"name": "huber"}}),
    ],
)
def test_multiclass_and_regression_runs_record_their_tasks_metrics(
    settings: Settings,
    make_run: Callable[..., str],
    task: str,
    y_fn: Callable[[np.ndarray], np.ndarray],
    extra: dict[str, object],
) -> None:
    X = np.random.default_rng(2).normal(size=(150, 3))
    run_id = make_run(task=task, data={"X": X.tolist(), "y": y_fn(X).tolist()}, **extra)
    assert execute_run(run_id, settings=settings) == "succeeded"
    names = {m.name for m in _metrics(settings, run_id)}
    assert set(RUN_METRICS[task]) <= names
    run = _run(settings, run_id)
    assert set(run.summary["final_metrics"]) == set(RUN_METRICS[task])
    assert ("calibration" in run.summary) == (task == "multiclass")
    assert "recommended_threshold" not in run.summary
    with session_scope(settings) as session:
        n = session.scalar(
            select(func.count()).select_from(Evaluation).where(Evaluation.id == run.evaluation_id)
        )
    assert n == 1


def test_early_stopping_on_a_metric_takes_its_mode_from_the_registry(
    settings: Settings, make_run: Callable[..., str]
) -> None:
    run_id = make_run(epochs=30, early_stopping={"monitor": "roc_auc", "patience": 2})
    run = _run(settings, run_id)
    assert run.spec["early_stopping"]["mode"] == "max"
    assert execute_run(run_id, settings=settings) == "succeeded"
    run = _run(settings, run_id)
    assert run.summary["monitor"] == "roc_auc" and run.summary["restored_best"]
