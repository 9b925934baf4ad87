"""The task: train one run, given its id. Shared by the Celery worker and the in-process runner.

Delivery is at-least-once, so the task first claims its run in the database (``queued ->
running`` in one conditional UPDATE); a duplicate delivery finds nothing to claim and returns.
While it trains, a monitor thread writes the heartbeat and reads the cancel flag every
``heartbeat_interval_s`` in its own short transaction; the loop's ``should_stop`` reads only
the cached flags, so checking at every batch boundary costs nothing. Each epoch's metrics are
upserted in one short transaction. Every write after the claim is conditional on the claim's
attempt number: a worker whose run was reaped (and maybe re-queued) writes nothing more.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

import numpy as np
import orjson
import torch
from numpy.typing import NDArray
from scipy.special import expit
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings, get_settings
from app.core import thresholds
from app.core.batch import Batch, make_batch
from app.core.calibration import fit_calibrator
from app.core.context import EvalContext
from app.core.registry import finite_or_none, resolve
from app.core.report import ReportOptions, evaluate, headline
from app.db import repositories
from app.db import runs as repo
from app.db.base import utcnow
from app.db.models import Run
from app.db.session import get_sessionmaker, session_scope
from app.errors import EvalserveError, ServiceUnavailable, UndefinedMetricError
from app.services import diagnostics, domain_validation, inspection_kinds
from app.services.run_data import Split, load_split
from app.services.runs import RUN_METRICS
from app.training import (
    EpochRecord,
    FitResult,
    NonFiniteLossError,
    TrainingSpec,
    fit,
    resolve_device,
)
from app.training.checkpoint import Checkpoint

log = logging.getLogger(__name__)

#: What ``execute_run`` returns: the run's final status, ``queued`` when it was handed back,
#: ``skipped`` when there was nothing to claim, ``lost`` when another party took the run over.
Outcome = str

#: Tries of one epoch's metric write before a database outage fails the run.
METRIC_WRITE_ATTEMPTS: Final = 4

STOP_CANCELLED: Final = "cancelled"
STOP_LOST: Final = "lost"
STOP_TIME_LIMIT: Final = "time_limit"
STOP_SHUTDOWN: Final = "shutdown"


class StopFlag(Protocol):
    """Set when the worker is shutting down: a ``threading.Event`` (in-process runner, solo
    pool) or a ``multiprocessing`` one that prefork children share with their parent."""

    def is_set(self) -> bool: ...


def worker_name(prefix: str = "worker") -> str:
    return f"{prefix}:{socket.gethostname()}:{os.getpid()}"


class RunMonitor:
    """Heartbeat writer and cancel-flag reader for one claimed run (a daemon thread)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        run_id: str,
        attempt: int,
        *,
        interval_s: float,
        time_limit_s: float,
        stop_event: StopFlag | None = None,
    ) -> None:
        self._factory, self._run_id, self._attempt = factory, run_id, attempt
        self._interval = interval_s
        self._deadline = time.monotonic() + time_limit_s
        self._stop_event = stop_event
        self._closed = threading.Event()
        self.cancelled = False
        self.lost = False
        self._thread = threading.Thread(
            target=self._loop, name=f"heartbeat-{run_id[:8]}", daemon=True
        )

    def __enter__(self) -> RunMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._closed.wait(self._interval):
            self.beat()

    def beat(self) -> None:
        try:
            with session_scope(factory=self._factory) as session:
                ours, cancel = repo.heartbeat(session, self._run_id, self._attempt, now=utcnow())
        except Exception:
            # A database blip: keep training; the next beat retries. A long outage ends in
            # the reaper failing the run, which the next successful beat then notices.
            log.warning("heartbeat of run %s failed; retrying", self._run_id, exc_info=True)
            return
        self.lost = self.lost or not ours
        self.cancelled = self.cancelled or cancel

    def stop_reason(self) -> str | None:
        if self.lost:
            return STOP_LOST
        if self.cancelled:
            return STOP_CANCELLED
        if time.monotonic() > self._deadline:
            return STOP_TIME_LIMIT
        if self._stop_event is not None and self._stop_event.is_set():
            return STOP_SHUTDOWN
        return None

    def should_stop(self) -> bool:
        return self.stop_reason() is not None


# -- metrics ---------------------------------------------------------------------------------------
def make_eval_batch(task: str, y: NDArray[Any], outputs: NDArray[Any], n_outputs: int) -> Batch:
    """The engine's batch of validation outputs (logits, or values for regression)."""
    if task == "regression":
        return make_batch("regression", y, outputs, score_field="y_pred")
    labels = [0, 1] if task == "binary" else list(range(n_outputs))
    return make_batch(task, y.astype(np.int64), outputs, score_type="logit", labels=labels)  # type: ignore[arg-type]


def metric_fn_for(task: str, n_outputs: int) -> Callable[[NDArray[Any], NDArray[Any]], dict]:
    """Each epoch's validation metrics, computed by the engine of /v1/evaluations."""
    wanted = resolve(task, [(name, {}) for name in RUN_METRICS[task]])  # type: ignore[arg-type]

    def metric_fn(outputs: NDArray[Any], y: NDArray[Any]) -> dict[str, float | None]:
        ctx = EvalContext(make_eval_batch(task, y, outputs, n_outputs))
        values: dict[str, float | None] = {}
        for spec, params in wanted:
            try:
                values[spec.name] = finite_or_none(spec.compute(ctx, **params))
            except UndefinedMetricError:
                values[spec.name] = None
        return values

    return metric_fn


def epoch_rows(record: EpochRecord) -> list[repo.MetricRow]:
    """The metric rows of one epoch, at step = its 0-based index."""
    now = utcnow()
    values: dict[str, float | None] = {
        "train_loss": record.train_loss,
        "train_penalty": record.train_penalty,
        "train_total": record.train_total,
        "val_loss": record.val_loss,
        **record.metrics,
        "lr": record.lr,
        "epoch_time_s": record.epoch_time_s,
        "train_time_s": record.train_time_s,
        "samples_per_s": record.samples_per_s,
    }
    for layer, norm in record.grad_norms.items():
        values[f"grad_norm/{layer}"] = norm
    for layer, norm in record.grad_norms_max.items():
        values[f"grad_norm_max/{layer}"] = norm
    for layer, ratio in record.update_ratios.items():
        values[f"update_ratio/{layer}"] = ratio
    for quantity, per_layer in (
        ("grad_mean", record.grad_means),
        ("grad_zero_frac", record.grad_zero_fracs),
        ("dead_frac", record.dead_fracs),
    ):
        for layer, value in per_layer.items():
            values[f"{quantity}/{layer}"] = value
    return [(name, record.epoch, value, now) for name, value in values.items()]


# -- the end of a run ------------------------------------------------------------------------------
def recommend_threshold(y: NDArray[Any], logits: NDArray[Any]) -> dict[str, Any] | None:
    """The probability threshold with the highest validation F1 (:mod:`app.core.thresholds`).

    None when the validation set holds a single class (F1 is then constant or undefined).
    """
    positive = y.astype(bool)
    if positive.all() or not positive.any():
        return None
    proba = expit(logits.astype(np.float64))
    rec = thresholds.recommend_threshold(positive, proba, objective="f1", n_neighbors=0)
    out = rec.to_dict()
    out.pop("table", None)
    out.pop("chosen_row", None)
    out["score"] = "probability"
    return out


def calibrate(task: str, y: NDArray[Any], logits: NDArray[Any]) -> dict[str, Any]:
    """Temperature scaling fit on the validation logits, with validation log loss before and
    after (optimistic: measured on the data it was fitted on)."""
    labels = y.astype(np.int64)
    try:
        cal = fit_calibrator("temperature", labels, logits, score_type="logit", device="cpu")
    except EvalserveError as exc:
        return {"method": "temperature", "state": None, "error": str(exc)}
    state = cal.to_dict()
    log_loss = resolve(task, [("log_loss", {})])[0][0]  # type: ignore[arg-type]
    n_out = 1 if task == "binary" else logits.shape[1]
    before = log_loss.compute(EvalContext(make_eval_batch(task, y, logits, n_out)))
    labels_list = [0, 1] if task == "binary" else list(range(n_out))
    calibrated = make_batch(task, labels, cal.apply(logits), labels=labels_list)  # type: ignore[arg-type]
    after = log_loss.compute(EvalContext(calibrated))
    return {
        "method": "temperature",
        "temperature": state.get("temperature"),
        "state": state,
        "val_log_loss_before": finite_or_none(before),
        "val_log_loss_after": finite_or_none(after),
    }


def final_report(
    task: str, y: NDArray[Any], outputs: NDArray[Any], n_outputs: int, max_points: int
) -> dict[str, Any]:
    batch = make_eval_batch(task, y, outputs, n_outputs)
    curves: tuple[str, ...] = {
        "binary": ("roc", "pr", "reliability"),
        "multiclass": ("reliability",),
    }.get(task, ())
    report = evaluate(batch, ReportOptions(curves=curves, max_curve_points=max_points))
    plain: dict[str, Any] = orjson.loads(orjson.dumps(report, option=orjson.OPT_SERIALIZE_NUMPY))
    return plain


def _summary(result: FitResult, split_sizes: tuple[int, int], stopped: str | None) -> dict:
    return {
        "has_weights": True,
        "n_train": split_sizes[0],
        "n_val": split_sizes[1],
        "n_features": result.n_features,
        "n_outputs": result.n_outputs,
        "monitor": result.monitor,
        "best_epoch": result.best_epoch,
        "best_value": None if result.best_value is None else finite_or_none(result.best_value),
        "stopped_early": result.stopped_early,
        "restored_best": result.restored_best,
        "stopped": stopped,
        "epochs_completed": result.epochs_completed,
        "steps": result.steps,
        "train_time_s": result.total_time_s,
        "samples_per_s": (
            float(np.mean([h.samples_per_s for h in result.history])) if result.history else None
        ),
    }


def _state_bytes(result: FitResult) -> bytes:
    buffer = io.BytesIO()
    torch.save(result.state_dict, buffer)
    return buffer.getvalue()


# -- the task --------------------------------------------------------------------------------------
@domain_validation.finishes_parent  # the last child of a domain-validation run finishes it
def execute_run(
    run_id: str,
    *,
    settings: Settings | None = None,
    stop_event: StopFlag | None = None,
    worker: str | None = None,
) -> Outcome:
    """Train the run ``run_id`` if it is still queued; returns what became of it."""
    settings = settings or get_settings()
    factory = get_sessionmaker(settings, write=True)
    with session_scope(factory=factory) as session:
        attempt = repo.claim_run(session, run_id, worker=worker or worker_name(), now=utcnow())
    if attempt is None:
        log.info("run %s: nothing to claim (duplicate delivery, cancelled or unknown)", run_id)
        return "skipped"
    monitor = RunMonitor(
        factory,
        run_id,
        attempt,
        interval_s=settings.heartbeat_interval_s,
        time_limit_s=settings.run_time_limit_s,
        stop_event=stop_event,
    )
    diverged: NonFiniteLossError | None = None
    with monitor:
        try:
            return _train(factory, settings, run_id, attempt, monitor)
        except NonFiniteLossError as exc:
            message, diverged = str(exc), exc
        except EvalserveError as exc:
            message = str(exc)
        except Exception as exc:
            if type(exc).__name__ == "SoftTimeLimitExceeded":  # Celery's backstop limit
                message = "stopped by the worker's time limit (EVALSERVE_RUN_TIME_LIMIT_S)"
            else:
                log.exception("run %s failed", run_id)
                message = f"internal error in the worker: {type(exc).__name__}: {exc}"[:10_000]
    extra: dict[str, Any] = {}
    if diverged is not None:  # where it diverged (and a sanity verdict), for the diagnostics
        extra["summary"] = {"has_weights": False, "failure": diverged.to_dict()}
        try:
            with session_scope(factory=factory) as session:
                extra["summary"] = diagnostics.divergence_summary(session, run_id, diverged)
        except Exception:  # the verdict is extra: it must never keep the run from failing
            log.warning("run %s: no sanity verdict for the diverged run", run_id, exc_info=True)
    with session_scope(factory=factory) as session:
        done = repo.finish_run(session, run_id, attempt, status="failed", error=message, **extra)
    return "failed" if done else "lost"


def _data_checks(run: Run, split: Split) -> dict[str, Any] | None:
    """The run's data checks, or None where they cannot be computed: they are extra, and
    must never keep a run from training."""
    try:
        return inspection_kinds.split_data_checks(run, split)
    except Exception:
        log.warning("run %s: no data checks", run.id, exc_info=True)
        return None


def _train(
    factory: sessionmaker[Session],
    settings: Settings,
    run_id: str,
    attempt: int,
    monitor: RunMonitor,
) -> Outcome:
    with session_scope(factory=factory) as session:
        run = repo.get_run(session, run_id, with_data=True)
        assert run is not None and run.spec is not None
        spec = TrainingSpec.from_dict(run.spec)
        task, name, tags = run.task, run.name, list(run.tags or [])
        split = load_split(session, run)
        # Checks of the whole split (a sanity run's too), once: a resumed run has them.
        checks = None if repo.stored_data_checks(session, run_id) else _data_checks(run, split)
        if spec.sanity_check is not None:  # sanity mode: memorize a small training subset
            split = diagnostics.sanity_subset(split, spec.sanity_check.rows, spec.seed)
        blob, _ = repo.get_checkpoint(session, run_id)
    # A run handed back by a worker that shut down goes on from its last complete epoch.
    resume = Checkpoint.from_bytes(blob) if blob is not None else None
    device = str(resolve_device(spec.device))
    stored = {} if checks is None else {"data_checks": checks}
    with session_scope(factory=factory) as session:
        repo.update_attempt(
            session, run_id, attempt, device=device, heartbeat_at=utcnow(), **stored
        )

    def on_epoch_end(record: EpochRecord) -> None:
        rows = epoch_rows(record)
        for retry in range(METRIC_WRITE_ATTEMPTS):
            try:
                with session_scope(factory=factory) as session:
                    ours = repo.record_epoch(
                        session,
                        run_id,
                        attempt,
                        rows=rows,
                        epochs_done=record.epoch + 1,
                        now=utcnow(),
                    )
                break
            except ServiceUnavailable:
                # The write is an upsert, so retrying it can never duplicate a value.
                if retry + 1 == METRIC_WRITE_ATTEMPTS:
                    raise
                time.sleep(0.5 * 2**retry)
        monitor.lost = monitor.lost or not ours

    n_outputs = spec.n_outputs or 2
    result = fit(
        spec,
        split.X_train,
        split.y_train,
        split.X_val,
        split.y_val,
        metric_fn=metric_fn_for(task, n_outputs),
        on_epoch_end=on_epoch_end,
        should_stop=monitor.should_stop,
        resume=resume,
        checkpoint_on_stop=True,
    )
    stopped = monitor.stop_reason() if result.cancelled else None
    if stopped == STOP_LOST:
        return "lost"
    if stopped == STOP_SHUTDOWN:
        handed_back = _hand_back(factory, settings, run_id, attempt, result.checkpoint)
        if handed_back is not None:
            return handed_back
    y_val, outputs = split.y_val, result.val_logits
    report = final_report(task, y_val, outputs, result.n_outputs, settings.max_curve_points)
    report.update(id=None, created_at=None, name=name, model=f"run:{run_id}", tags=tags)
    summary = _summary(result, (len(split.y_train), len(y_val)), stopped)
    summary["final_metrics"] = {k: report["metrics"].get(k) for k in RUN_METRICS[task]}
    if task != "regression":
        summary["calibration"] = calibrate(task, y_val, outputs)
    if task == "binary":
        summary["recommended_threshold"] = recommend_threshold(y_val, outputs)
    if spec.sanity_check is not None:
        with session_scope(factory=factory) as session:
            summary["sanity_check"] = diagnostics.sanity_from_db(session, run_id, spec, split)
    # One pass through orjson: numpy scalars become numbers, NaN and inf become null.
    summary = orjson.loads(orjson.dumps(summary, option=orjson.OPT_SERIALIZE_NUMPY))
    values: dict[str, Any] = {
        "summary": summary,
        "state_dict": _state_bytes(result),
        "device": result.device,  # e.g. cuda:0, more precise than the resolved "cuda"
        "checkpoint": None,  # the run is over: nothing will resume it
        "checkpoint_epoch": None,
    }
    status, outcome_error = "succeeded", None
    if stopped == STOP_CANCELLED:
        status = "cancelled"
    elif stopped == STOP_TIME_LIMIT:
        status = "failed"
        outcome_error = f"stopped after the run time limit of {settings.run_time_limit_s:g} s"
    elif stopped == STOP_SHUTDOWN:
        status = "failed"
        why = (
            f"attempt {attempt} of EVALSERVE_MAX_RUN_ATTEMPTS={settings.max_run_attempts}"
            if _resumable(settings)
            else "EVALSERVE_RESUME_INTERRUPTED_RUNS is off"
        )
        outcome_error = (
            f"interrupted at epoch {result.epochs_completed} of {spec.epochs}: the worker shut "
            f"down during the run, and it was not queued again ({why}); submit it again"
        )
    try:
        with session_scope(factory=factory) as session:
            _store_result(session, run_id, attempt, status, outcome_error, values, report)
    except _Lost:
        return "lost"
    return status


def _resumable(settings: Settings) -> bool:
    return settings.resume_interrupted_runs or settings.requeue_dead_runs


def _hand_back(
    factory: sessionmaker[Session],
    settings: Settings,
    run_id: str,
    attempt: int,
    checkpoint: Checkpoint | None,
) -> Outcome | None:
    """Queue a run interrupted by a worker shutdown again: with its checkpoint when an epoch
    was completed (the next attempt resumes there and keeps the stored metrics), from scratch
    otherwise. None when it may not be re-queued (the caller fails it, saying where it was)."""
    if not _resumable(settings) or attempt >= settings.max_run_attempts:
        return None
    with session_scope(factory=factory) as session:
        if checkpoint is not None and checkpoint.epoch > 0:
            done = repo.suspend_run(
                session,
                run_id,
                attempt,
                checkpoint=checkpoint.to_bytes(),
                checkpoint_epoch=checkpoint.epoch,
            )
        else:
            done = repo.release_run(session, run_id, attempt)
    if done:
        log.info("run %s: worker shutting down; queued again to resume", run_id)
    return "queued" if done else "lost"


class _Lost(Exception):
    """The run is no longer this attempt's: roll back what the attempt was about to store."""


def _store_result(
    session: Session,
    run_id: str,
    attempt: int,
    status: str,
    error: str | None,
    values: dict[str, Any],
    report: dict[str, Any],
) -> None:
    if status != "failed":
        name, tags = report.get("name"), report.get("tags", [])
        evaluation = repositories.create_evaluation(
            session,
            task=report["task"],
            n_samples=report["n_samples"],
            report=report,
            name=name,
            model=f"run:{run_id}",
            tags=tags,
            headline=headline(report),
        )
        values["evaluation_id"] = evaluation.id
    if not repo.finish_run(session, run_id, attempt, status=status, error=error, **values):
        raise _Lost(run_id)
