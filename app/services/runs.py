"""Runs: create (validated, ready to queue), read, cancel, metric history, external logging,
predictions from the stored weights.

Never commits and never enqueues: the route enqueues the run id after the request's
transaction has committed (a rolled-back run is never trained).
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

import numpy as np
import orjson
import torch
from scipy.special import expit, softmax
from sqlalchemy.orm import Session

from app.api.schemas.runs import TRAINING_FIELDS, MetricBatch, RunCreate, ValidationSpec
from app.config import Settings
from app.core.calibration import TemperatureScaling
from app.core.registry import REGISTRY
from app.db import api_keys
from app.db import runs as repo
from app.db.base import utcnow
from app.db.models import TERMINAL_STATUSES, Run
from app.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge, TooManyRequests
from app.services import domain_validation, image_run_data, run_data
from app.training import MLP, TrainingSpec, load_model
from app.training import predict as predict_outputs
from app.training.spec import LOOP_MONITORS

#: The validation metrics every epoch records, per task (names of :mod:`app.core.registry`).
RUN_METRICS: Final[dict[str, tuple[str, ...]]] = {
    "binary": ("roc_auc", "average_precision", "f1", "log_loss", "brier", "ece"),
    "multiclass": ("accuracy", "f1_macro", "log_loss", "ece"),
    "regression": ("root_mean_squared_error", "mean_absolute_error", "r2"),
}


# -- creation --------------------------------------------------------------------------------------
def build_spec(body: RunCreate, n_classes: int | None = None) -> TrainingSpec:
    """The training spec of a request; early stopping's mode comes from the metric registry
    when the monitored metric is one of the run's validation metrics and no mode is given."""
    raw = body.model_dump(include=set(TRAINING_FIELDS), exclude_none=True)
    es = raw.get("early_stopping")
    if es is not None:
        monitor = es.get("monitor", "val_loss")
        allowed = [*LOOP_MONITORS, *RUN_METRICS[body.task]]
        if monitor not in allowed:
            raise InvalidInput(
                f"is {monitor!r}; a {body.task} run can monitor {allowed}",
                field="early_stopping.monitor",
            )
        if "mode" not in es and monitor in REGISTRY:
            es["mode"] = "max" if REGISTRY[monitor].greater_is_better else "min"
    raw["task"] = body.task
    spec = TrainingSpec.from_dict(raw)
    if spec.task == "multiclass" and spec.n_classes is None and n_classes is not None:
        spec = replace(spec, n_classes=n_classes)
    return spec


def queue_for(spec: TrainingSpec, settings: Settings) -> str:
    """GPU work (device auto or cuda) goes to the GPU queue, device cpu to the CPU queue."""
    return settings.cpu_queue if spec.device == "cpu" else settings.gpu_queue


def check_run_limit(session: Session, api_key_id: str | None, settings: Settings) -> None:
    """Refuse a new run (429) when the key already has ``max_concurrent_runs_per_key`` runs
    queued or running. The key's row is locked first and the count is read inside the write
    transaction that inserts the run, so concurrent requests of one key cannot all pass."""
    limit = settings.max_concurrent_runs_per_key
    if api_key_id is None or limit == 0:
        return
    api_keys.lock_api_key(session, api_key_id)
    active = repo.count_active_runs_of_key(session, api_key_id)
    if active >= limit:
        raise TooManyRequests(
            f"this API key has {active} training runs queued or running; the limit is {limit} "
            "(EVALSERVE_MAX_CONCURRENT_RUNS_PER_KEY): wait for one to finish, or cancel one"
        )


def create_run(
    session: Session, body: RunCreate, settings: Settings, api_key_id: str | None = None
) -> Run:
    """Check and store a run: ``queued`` (to be enqueued after commit), or ``running`` for an
    external run. Every problem is an :class:`InvalidInput` (422) raised before anything is
    stored; a key over its concurrent-run limit is a :class:`TooManyRequests` (429)."""
    common: dict[str, Any] = {
        "name": body.name,
        "tags": list(dict.fromkeys(body.tags)),
        "task": body.task,
        "api_key_id": api_key_id,
    }
    if body.external:
        for field in (*TRAINING_FIELDS, "data", "validation"):
            if field in body.model_fields_set:
                raise InvalidInput("does not apply to an external run", field=field)
        now = utcnow()
        return repo.create_run(
            session, external=True, status="running", started_at=now, data={}, **common
        )
    if body.data is None:
        raise InvalidInput("is required (inline X and y, or a dataset_id)", field="data")
    if domain_validation.requested(body.validation):  # a parent run of child runs
        return domain_validation.create_parent(session, body, settings, api_key_id)
    spec = build_spec(body)  # options first: cheap, and independent of the data
    shape = None
    if image_run_data.is_image_spec(spec):  # a cnn on images (app.services.image_run_data)
        prepared, shape = image_run_data.prepare(
            session,
            body.task,
            body.data,
            body.validation or ValidationSpec.model_validate({}),
            spec=spec,
            max_rows=settings.max_rows,
        )
    else:
        image_run_data.refuse_images(session, body.data, body.validation)
        prepared = run_data.prepare(
            session,
            body.task,
            body.data,
            body.validation or ValidationSpec.model_validate({}),
            seed=spec.seed,
            n_classes=spec.n_classes,
            max_rows=settings.max_rows,
        )
    spec = image_run_data.with_input_shape(build_spec(body, prepared.n_classes), shape)
    check_run_limit(session, api_key_id, settings)  # last: the lock is held until commit
    return repo.create_run(
        session,
        status="queued",
        queue=queue_for(spec, settings),
        spec=spec.to_dict(),
        data=prepared.doc,
        dataset_id=prepared.dataset_id,
        val_dataset_id=prepared.val_dataset_id,
        inline_data=prepared.inline,
        total_epochs=spec.epochs,
        n_features=prepared.n_features,
        **common,
    )


# -- reading ---------------------------------------------------------------------------------------
def get_run(session: Session, run_id: str) -> Run:
    run = repo.get_run(session, run_id)
    if run is None:
        raise NotFound(f"no run with id {run_id!r}", field="run_id")
    return run


def as_read(run: Run) -> dict[str, Any]:
    duration = None
    if run.started_at is not None:
        end = run.finished_at or (utcnow() if run.status == "running" else None)
        duration = None if end is None else (end - run.started_at).total_seconds()
    return {
        "id": run.id,
        "created_at": run.created_at,
        "name": run.name,
        "tags": list(run.tags or []),
        "task": run.task,
        "external": run.external,
        "status": run.status,
        "progress": {"epoch": run.epoch, "total_epochs": run.total_epochs},
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "heartbeat_at": run.heartbeat_at,
        "duration_s": duration,
        "queue": run.queue,
        "worker": run.worker,
        "device": run.device,
        "attempts": run.attempts,
        "cancel_requested": run.cancel_requested,
        "error": run.error,
        "spec": run.spec,
        "data": run.data,
        "summary": run.summary,
        "evaluation_id": run.evaluation_id,
        "parent_id": run.parent_id,
    }


def _reloaded(session: Session, run_id: str) -> Run:
    run = session.get(Run, run_id, populate_existing=True)
    assert run is not None
    return run


def cancel_run(session: Session, run_id: str) -> tuple[Run, bool]:
    """Cancel a run; returns it and whether it is already over (else the worker stops at its
    next batch boundary). A queued run is cancelled at once; cancelling twice is harmless; a
    run that already succeeded or failed is a conflict."""
    run = get_run(session, run_id)
    if domain_validation.is_parent(run):
        over = domain_validation.cancel_parent(session, run)
        return _reloaded(session, run_id), over
    now = utcnow()
    if run.status == "queued":
        done = repo.set_status(
            session,
            run_id,
            expected="queued",
            status="cancelled",
            finished_at=now,
            cancel_requested=True,
        )
        if done:  # else a worker claimed it meanwhile: cancel it as a running run
            if run.parent_id is not None:  # maybe its parent's last unfinished child
                domain_validation.finalize(session, run.parent_id)
            return _reloaded(session, run_id), True
    run = _reloaded(session, run_id)
    if run.status == "running":
        if run.external:
            repo.set_status(
                session, run_id, expected="running", status="cancelled", finished_at=now
            )
            return _reloaded(session, run_id), True
        repo.request_cancel(session, run_id)
        return _reloaded(session, run_id), False
    if run.status == "cancelled":
        return run, True
    raise Conflict(f"the run has already {run.status}; there is nothing to cancel", field="run_id")


# -- metric history --------------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricQuery:
    names: tuple[str, ...] | None
    after: tuple[int, str | None] | None
    limit: int
    cursor: str | None


def encode_cursor(step: int, name: str | None) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([step, name])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str | None]:
    try:
        step, name = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(step, int) or not (name is None or isinstance(name, str)):
            raise ValueError(cursor)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise InvalidInput("is not a cursor returned by this API", field="cursor") from None
    return step, name


def metric_query(
    names: Sequence[str] | None, after_step: int | None, cursor: str | None, limit: int
) -> MetricQuery:
    """Query parameters as one query; ``names`` may be comma-separated, ``cursor`` wins over
    ``after_step``."""
    flat = None
    if names:
        flat = tuple(sorted({n.strip() for part in names for n in part.split(",") if n.strip()}))
    after: tuple[int, str | None] | None = None
    if cursor:
        after = decode_cursor(cursor)
    elif after_step is not None:
        after = (after_step, None)
    return MetricQuery(flat or None, after, limit, cursor)


def metrics_etag(session: Session, run_id: str, query: MetricQuery) -> str:
    """A strong ETag of the history page: it changes with every metric write and status change
    of the run (``metrics_seq``), and with the query. One narrow query, no metric rows read."""
    version = repo.run_version(session, run_id)
    if version is None:
        raise NotFound(f"no run with id {run_id!r}", field="run_id")
    key = orjson.dumps([run_id, *version, query.names, query.after, query.limit])
    return '"' + hashlib.sha256(key).hexdigest()[:32] + '"'


def metric_history(session: Session, run_id: str, query: MetricQuery) -> dict[str, Any]:
    run = get_run(session, run_id)
    rows = repo.list_metrics(
        session, run_id, names=query.names, after=query.after, limit=query.limit
    )
    items = [
        {"name": m.name, "step": m.step, "value": m.value, "timestamp": m.timestamp} for m in rows
    ]
    if rows:
        next_cursor: str | None = encode_cursor(rows[-1].step, rows[-1].name)
    elif query.after is not None:
        next_cursor = query.cursor or encode_cursor(*query.after)
    else:
        next_cursor = None
    return {
        "run_id": run_id,
        "status": run.status,
        "items": items,
        "next_cursor": next_cursor,
        "has_more": len(rows) == query.limit,
    }


def run_events(
    session: Session, run_id: str, after: tuple[int, str | None] | None, limit: int = 5000
) -> tuple[dict[str, Any], list[tuple[int, dict[str, float | None], str]], bool]:
    """For /events: the run's state, new metrics grouped by step (each with the cursor after
    it), and whether more metrics are waiting (the read stopped at ``limit``). The state is
    read first, so when it is terminal the metrics read next are all there will be."""
    run = session.get(Run, run_id, populate_existing=True)
    if run is None:
        raise NotFound(f"no run with id {run_id!r}", field="run_id")
    state = {
        "status": run.status,
        "progress": {"epoch": run.epoch, "total_epochs": run.total_epochs},
        "cancel_requested": run.cancel_requested,
        "error": run.error,
        "evaluation_id": run.evaluation_id,
    }
    groups: OrderedDict[int, dict[str, float | None]] = OrderedDict()
    cursors: dict[int, str] = {}
    rows = repo.list_metrics(session, run_id, after=after, limit=limit)
    for m in rows:
        groups.setdefault(m.step, {})[m.name] = m.value
        cursors[m.step] = encode_cursor(m.step, m.name)
    steps = [(step, values, cursors[step]) for step, values in groups.items()]
    return state, steps, len(rows) == limit


# -- external runs ---------------------------------------------------------------------------------
def log_metrics(session: Session, run_id: str, batch: MetricBatch, max_metrics: int) -> Run:
    """Store an external run's metrics (upserts: a retried request changes nothing)."""
    if len(batch.metrics) > max_metrics:
        raise PayloadTooLarge(
            f"{len(batch.metrics)} metrics in one request; the limit is {max_metrics} "
            "(split the batch)",
            field="metrics",
        )
    run = get_run(session, run_id)
    if not run.external:
        raise Conflict("only external runs (external: true) accept logged metrics", field="run_id")
    if run.status != "running":
        raise Conflict(f"the run is {run.status}; it no longer accepts metrics", field="run_id")
    now = utcnow()
    rows = [(m.name, m.step, m.value, _aware(m.timestamp) or now) for m in batch.metrics]
    repo.upsert_metrics(session, run_id, rows)
    if batch.status is not None:
        repo.set_status(
            session,
            run_id,
            expected="running",
            status=batch.status,
            finished_at=now,
            error=batch.error if batch.status == "failed" else None,
        )
    return _reloaded(session, run_id)


def _aware(ts: datetime | None) -> datetime | None:
    if ts is None or ts.tzinfo is not None:
        return ts
    return ts.replace(tzinfo=utcnow().tzinfo)  # a naive timestamp is read as UTC


# -- predictions -----------------------------------------------------------------------------------
_MODEL_CACHE_SIZE = 8
_models: OrderedDict[tuple[str, int], MLP] = OrderedDict()
_models_lock = threading.Lock()


def _model(session: Session, run: Run, spec: TrainingSpec) -> MLP:
    """The run's trained network, loaded once per process (weights of a finished run never
    change; ``attempts`` keys out a re-trained run)."""
    key = (run.id, run.attempts)
    with _models_lock:
        model = _models.get(key)
        if model is not None:
            _models.move_to_end(key)
            return model
    full = repo.get_run(session, run.id, with_state=True)
    assert full is not None and full.state_dict is not None and full.n_features is not None
    state = torch.load(io.BytesIO(full.state_dict), map_location="cpu", weights_only=True)
    model = load_model(spec, full.n_features, state)
    with _models_lock:
        _models[key] = model
        while len(_models) > _MODEL_CACHE_SIZE:
            _models.popitem(last=False)
    return model


def predict(session: Session, run_id: str, X: Any, max_rows: int) -> dict[str, Any]:
    run = get_run(session, run_id)
    summary = run.summary or {}
    if run.status not in TERMINAL_STATUSES or not summary.get("has_weights"):
        raise Conflict(f"the run is {run.status} and has no trained weights", field="run_id")
    Xa = image_run_data.features(run, X, "X", max_rows)  # images: checked against their shape
    if Xa.shape[1] != run.n_features:
        raise InvalidInput(
            f"rows have {Xa.shape[1]} features; the run was trained on {run.n_features}",
            field="X",
        )
    assert run.spec is not None
    spec = TrainingSpec.from_dict(run.spec)
    out = predict_outputs(_model(session, run, spec), spec, Xa).astype(np.float64)
    result: dict[str, Any] = {"run_id": run.id, "task": run.task, "n_samples": int(Xa.shape[0])}
    if run.task == "regression":
        result["predictions"] = out
        return result
    calibration = summary.get("calibration") or {}
    calibrator = None
    if calibration.get("state"):
        calibrator = TemperatureScaling.from_dict(calibration["state"])
    if run.task == "binary":
        threshold = (summary.get("recommended_threshold") or {}).get("threshold", 0.5)
        proba = expit(out)
        result.update(
            logits=out,
            probabilities=proba,
            threshold=threshold,
            labels=(proba >= threshold).astype(np.int64),
        )
    else:
        proba = softmax(out, axis=1)
        result.update(logits=out, probabilities=proba, labels=proba.argmax(axis=1))
    if calibrator is not None:
        result["calibrated_probabilities"] = calibrator.apply(out)
    return result
