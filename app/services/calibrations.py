"""Calibrations: fit a calibrator, judge it before/after (on validation data when given), store
it, and apply stored calibrators to new scores."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import orjson
from sqlalchemy.orm import Session

from app.api.schemas.calibrations import ApplyRequest, CalibrationRequest
from app.core.batch import Batch, make_batch, make_scores
from app.core.calibration import calibrator_from_dict, fit_calibrator
from app.core.report import ReportOptions, evaluate
from app.db.calibrators import create_calibrator
from app.db.models import Calibrator
from app.errors import InvalidInput

#: What "before" and "after" report: calibration quality and (unchanged) discrimination.
SCORECARD: list[tuple[str, dict[str, Any]]] = [
    ("log_loss", {}),
    ("brier", {}),
    ("ece", {}),
    ("mce", {}),
    ("accuracy", {}),
]


def scorecard(batch: Batch, n_bins: int, binning: str) -> dict[str, Any]:
    """NLL, Brier, ECE, MCE, accuracy and the reliability diagram of one batch."""
    report = evaluate(
        batch,
        ReportOptions(
            metrics=SCORECARD,
            losses=[],
            curves=("reliability",),
            n_bins=n_bins,
            binning=binning,  # type: ignore[arg-type]
        ),
    )
    metrics = report["metrics"]
    return {
        "metrics": {
            "nll": metrics["log_loss"],
            "brier": metrics["brier"],
            "ece": metrics["ece"],
            "mce": metrics["mce"],
            "accuracy": metrics["accuracy"],
        },
        "reliability": report["curves"]["reliability"],
        "warnings": report["warnings"],
    }


def _calibrated(batch: Batch, probabilities: np.ndarray) -> Batch:
    return replace(batch, score=probabilities, score_type="probability")


def _before_after(batch: Batch, calibrated: np.ndarray, n_bins: int, binning: str) -> dict:
    before = scorecard(batch, n_bins, binning)
    after = scorecard(_calibrated(batch, calibrated), n_bins, binning)
    return {
        "n_samples": batch.n,
        "before": before["metrics"],
        "after": after["metrics"],
        "reliability": {"before": before["reliability"], "after": after["reliability"]},
        "warnings": before["warnings"] + after["warnings"],
    }


def _labels_of(batch: Batch) -> dict[str, Any]:
    """``labels`` / ``pos_label`` that read another batch with this batch's classes."""
    labels = batch.class_labels
    if batch.task == "binary":
        return {"labels": labels, "pos_label": labels[1]}
    return {"labels": labels}


def fit(req: CalibrationRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit and judge a calibrator. Returns (response, stored state of the calibrator)."""
    batch = make_batch(
        req.task,
        req.y_true,
        req.y_score,
        score_type=req.score_type,
        sample_weight=req.sample_weight,
        labels=req.labels,
        pos_label=req.pos_label,
    )
    calibrator = fit_calibrator(
        req.method,
        batch.y,
        batch.score,
        score_type=req.score_type,
        sample_weight=batch.sample_weight,
        **req.params,
    )
    fit_probabilities = calibrator.apply(batch.score)
    response: dict[str, Any] = {
        "method": req.method,
        "task": req.task,
        "score_type": req.score_type,
        "labels": batch.class_labels,
        "n_classes": len(batch.class_labels),
        "calibrator": calibrator.to_dict(),
        "fit": _before_after(batch, fit_probabilities, req.n_bins, req.binning),
        "validation": None,
    }
    if req.validation is not None:
        v = req.validation
        vbatch = make_batch(
            req.task,
            v.y_true,
            v.y_score,
            score_type=req.score_type,
            sample_weight=v.sample_weight,
            **_labels_of(batch),
        )
        response["validation"] = _before_after(
            vbatch, calibrator.apply(vbatch.score), req.n_bins, req.binning
        )
    if req.return_probabilities:
        if req.apply is not None:
            scores = make_scores(req.task, req.apply.y_score, req.score_type, "apply.y_score")
            _check_columns(scores, len(batch.class_labels), req.task, "apply.y_score")
            response["probabilities"] = calibrator.apply(scores)
            response["probabilities_for"] = "apply"
        else:
            response["probabilities"] = fit_probabilities
            response["probabilities_for"] = "fit"
    plain: dict[str, Any] = orjson.loads(orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY))
    plain.update(id=None, created_at=None, name=req.name, model=req.model, tags=list(req.tags))
    return plain, plain["calibrator"]


def _check_columns(scores: np.ndarray, n_classes: int, task: str, field: str) -> None:
    if task == "multiclass" and scores.shape[1] != n_classes:
        raise InvalidInput(
            f"has {scores.shape[1]} columns but the calibrator was fit on {n_classes} classes",
            field=field,
        )


def store(session: Session, response: dict[str, Any]) -> dict[str, Any]:
    """Persist a fitted calibrator (without the per-row probabilities) and return the response
    with its ``id`` and ``created_at``."""
    report = {k: v for k, v in response.items() if k not in ("probabilities", "id", "created_at")}
    row = create_calibrator(
        session,
        method=response["method"],
        task=response["task"],
        n_classes=response["n_classes"],
        score_type=response["score_type"],
        n_samples=response["fit"]["n_samples"],
        state=response["calibrator"],
        report=report,
        name=response.get("name"),
        model=response.get("model"),
        tags=response.get("tags", []),
    )
    return {**response, "id": row.id, "created_at": row.created_at}


def as_read(row: Calibrator) -> dict[str, Any]:
    return {**row.report, "id": row.id, "created_at": row.created_at}


def as_summary(row: Calibrator) -> dict[str, Any]:
    fit_report = row.report.get("fit", {})
    return {
        "id": row.id,
        "created_at": row.created_at,
        "method": row.method,
        "task": row.task,
        "n_classes": row.n_classes,
        "score_type": row.score_type,
        "name": row.name,
        "model": row.model,
        "tags": list(row.tags or []),
        "n_samples": row.n_samples,
        "before": fit_report.get("before"),
        "after": fit_report.get("after"),
    }


def apply(row: Calibrator, req: ApplyRequest) -> dict[str, Any]:
    """Calibrated probabilities for new scores; with labels, the before/after scorecard too."""
    calibrator = calibrator_from_dict(row.state)
    task = row.task
    scores = make_scores(task, req.y_score, row.score_type)  # type: ignore[arg-type]
    if task == "binary" and np.ndim(req.y_score) != 1:
        raise InvalidInput("this calibrator is binary: send one score per row", field="y_score")
    _check_columns(scores, row.n_classes, task, "y_score")
    probabilities = calibrator.apply(scores)
    out: dict[str, Any] = {"calibrator_id": row.id, "probabilities": probabilities}
    if req.y_true is not None:
        labels = row.report.get("labels")
        batch = make_batch(
            task,  # type: ignore[arg-type]
            req.y_true,
            scores,
            score_type=row.score_type,  # type: ignore[arg-type]
            sample_weight=req.sample_weight,
            labels=labels,
            pos_label=labels[1] if task == "binary" and labels else None,
        )
        out["evaluation"] = _before_after(batch, probabilities, req.n_bins, req.binning)
    return out
