"""Evaluations: build the batch, run the core report, store it when asked."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.orm import Session

from app.api.schemas.common import ParamSpec
from app.api.schemas.evaluations import EvaluationOptions
from app.core.batch import make_batch
from app.core.report import CURVES, ReportOptions, evaluate, headline
from app.db import repositories
from app.db.models import HEADLINE_METRICS, Evaluation
from app.errors import InvalidInput
from app.services.segmentation import check_task_options, compute_segmentation_report


def named_params(items: list[str | ParamSpec] | None) -> list[tuple[str, dict[str, Any]]] | None:
    """``["f1", {"name": "fbeta", "beta": 2}]`` -> ``[("f1", {}), ("fbeta", {"beta": 2})]``."""
    if items is None:
        return None
    return [(i, {}) if isinstance(i, str) else (i.name, i.params) for i in items]


def compute_report(options: EvaluationOptions, arrays: dict[str, Any], max_points: int) -> dict:
    """The report of one batch, as plain JSON-ready data (no numpy left in it)."""
    if options.task == "segmentation":
        return compute_segmentation_report(options, arrays)
    check_task_options(options)
    regression = options.task == "regression"
    score_field = "y_pred" if regression else "y_score"
    scores = arrays.get(score_field)
    if scores is None:  # an Arrow or .npz body without the column (JSON bodies are validated)
        raise InvalidInput(f"is required for task {options.task!r}", field=score_field)
    batch = make_batch(
        options.task,
        arrays["y_true"],
        scores,
        score_type=options.score_type,
        sample_weight=arrays.get("sample_weight"),
        labels=options.labels,
        pos_label=options.pos_label,
        score_field=score_field,
    )
    curves = options.curves
    penalty = options.penalty
    report = evaluate(
        batch,
        ReportOptions(
            metrics=named_params(options.metrics),
            losses=named_params(options.losses),
            penalty=None if penalty is None else (penalty.weights, penalty.l1, penalty.l2),
            threshold=options.threshold,
            curves=CURVES if curves is True else (curves or ()),
            max_curve_points=options.max_curve_points or max_points,
            n_bins=options.n_bins,
            binning=options.binning,
            groups=arrays.get("groups"),
            top_errors=options.top_errors,
            ids=arrays.get("ids"),
            bootstrap=_bootstrap(options),
        ),
    )
    # One pass through orjson turns numpy arrays and scalars into plain data for storage.
    plain: dict[str, Any] = orjson.loads(orjson.dumps(report, option=orjson.OPT_SERIALIZE_NUMPY))
    plain.update(
        id=None, created_at=None, name=options.name, model=options.model, tags=list(options.tags)
    )
    return plain


def _bootstrap(options: EvaluationOptions) -> Any:
    spec = options.bootstrap
    if spec is None:
        return None
    return (spec.n, spec.confidence, spec.seed, named_params(spec.metrics))


def store_report(session: Session, report: dict[str, Any]) -> dict[str, Any]:
    """Persist a computed report; returns it with ``id`` and ``created_at`` set."""
    row = repositories.create_evaluation(
        session,
        task=report["task"],
        n_samples=report["n_samples"],
        report=report,
        name=report.get("name"),
        model=report.get("model"),
        tags=report.get("tags", []),
        headline=headline(report),
    )
    session.flush()
    return as_read(row)


def as_read(row: Evaluation) -> dict[str, Any]:
    """A stored evaluation in the response shape of a fresh one."""
    out = dict(row.report)
    out.update(
        id=row.id,
        created_at=row.created_at,
        name=row.name,
        model=row.model,
        tags=list(row.tags or []),
    )
    return out


def as_summary(row: Evaluation) -> dict[str, Any]:
    return {
        "id": row.id,
        "created_at": row.created_at,
        "task": row.task,
        "n_samples": row.n_samples,
        "name": row.name,
        "model": row.model,
        "tags": list(row.tags or []),
        "headline": {col: getattr(row, col) for col in HEADLINE_METRICS},
    }
