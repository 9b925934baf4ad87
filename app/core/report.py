"""The full evaluation report of a batch: metrics, losses, confusion, curves and calibration.

Everything is read from one :class:`EvalContext`, so a binary report sorts its scores once and
every ranking metric, curve, operating point and calibration bin reuses that sort.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from app.core import classification as clf
from app.core import ranking
from app.core.batch import Batch
from app.core.bootstrap import bootstrap_intervals, vectorized_metrics
from app.core.context import Binning, EvalContext
from app.core.error_analysis import confusion_analysis, most_confident_errors
from app.core.losses import compute_loss, get_loss, penalty
from app.core.registry import finite_or_none, metric_key, resolve
from app.core.slices import evaluate_groups
from app.errors import InvalidInput, UndefinedMetricError

CURVES = ("roc", "pr", "reliability")


@dataclass(frozen=True)
class ReportOptions:
    metrics: list[tuple[str, dict[str, Any]]] | None = None
    losses: list[tuple[str, dict[str, Any]]] | None = None
    penalty: tuple[Any, float, float] | None = None  # (weights, l1, l2)
    threshold: float | None = None
    curves: Iterable[str] = ()
    max_curve_points: int = 1000
    n_bins: int = 15
    binning: Binning = "uniform"
    #: Per-group slices: column name -> one group label per row.
    groups: Mapping[str, Any] | None = None
    #: The k most confident wrong predictions (binary / multiclass), with optional row ids.
    top_errors: int | None = None
    ids: Any = None
    #: Percentile intervals: (n_resamples, confidence, seed, metrics or None for the
    #: report's vectorized ones).
    bootstrap: tuple[int, float, int, list[tuple[str, dict[str, Any]]] | None] | None = None


def evaluate(batch: Batch, options: ReportOptions | None = None) -> dict[str, Any]:
    """The report as plain data (floats, lists and numpy arrays), ready for a JSON encoder.

    Undefined metrics are ``None`` with an entry in ``warnings`` that says why.
    """
    opts = options or ReportOptions()
    ctx = EvalContext(batch, threshold=opts.threshold, n_bins=opts.n_bins, binning=opts.binning)
    warnings: list[dict[str, str]] = []
    report: dict[str, Any] = {"task": batch.task, "n_samples": batch.n}

    metrics: dict[str, float | None] = {}
    for spec, params in resolve(batch.task, opts.metrics):
        key = metric_key(spec.name, params)
        try:
            metrics[key] = finite_or_none(spec(ctx, **params))
        except UndefinedMetricError as exc:
            metrics[key] = None
            warnings.append({"metric": key, "message": exc.reason})
    report["metrics"] = metrics
    report["losses"] = _losses(batch, opts, warnings)

    if batch.task != "regression":
        report["threshold"] = ctx.threshold if batch.task != "multiclass" else None
        report["confusion_matrix"] = _confusion(ctx)
        report["per_class"] = _per_class(ctx)
        report["calibration"] = _calibration(ctx)
        curves = set(opts.curves)
        if curves:
            report["curves"] = _curves(ctx, curves, opts.max_curve_points)
    if batch.task == "multiclass":
        report["confusion_analysis"] = confusion_analysis(ctx.confusion, batch.class_labels)
    if opts.top_errors is not None:
        report["most_confident_errors"] = most_confident_errors(
            batch, ids=opts.ids, k=opts.top_errors, threshold=opts.threshold
        )
    if opts.groups:
        report["groups"] = evaluate_groups(
            batch,
            opts.groups,
            opts.metrics,
            threshold=opts.threshold,
            n_bins=opts.n_bins,
            binning=opts.binning,
        )
    if opts.bootstrap is not None:
        report["intervals"] = _intervals(batch, opts, *opts.bootstrap)
    report["warnings"] = warnings
    return report


def _intervals(
    batch: Batch,
    opts: ReportOptions,
    n_resamples: int,
    confidence: float,
    seed: int,
    requested: list[tuple[str, dict[str, Any]]] | None,
) -> dict[str, Any]:
    if requested is None:
        # By default, intervals for the report's metrics that resample in vectorized form;
        # others (one-vs-one AUC, per-row averages) cost a full evaluation per resample.
        fast = vectorized_metrics(batch.task)
        chosen = [(s.name, p) for s, p in resolve(batch.task, opts.metrics) if s.name in fast]
    else:
        chosen = requested
    intervals = bootstrap_intervals(
        batch,
        chosen,
        n_resamples=n_resamples,
        confidence=confidence,
        seed=seed,
        threshold=opts.threshold,
        n_bins=opts.n_bins,
        binning=opts.binning,
    )
    return {
        "n_resamples": n_resamples,
        "confidence": confidence,
        "seed": seed,
        "metrics": {key: asdict(interval) for key, interval in intervals.items()},
    }


def _losses(batch: Batch, opts: ReportOptions, warnings: list[dict[str, str]]) -> dict[str, Any]:
    requested = opts.losses if opts.losses is not None else default_losses(batch)
    omega = None
    if opts.penalty is not None:
        weights, l1, l2 = opts.penalty
        omega = penalty(weights, l1=l1, l2=l2)
    out: dict[str, Any] = {}
    for name, params in requested:
        params = dict(params)
        reduction = params.pop("reduction", "mean")
        if reduction == "none":
            raise InvalidInput(
                "a report holds one value per loss: use reduction 'mean' or 'sum' "
                "(POST /v1/losses returns per-sample values)",
                field="losses",
            )
        key = metric_key(name, params)
        y_true, y_pred, params = _loss_inputs(batch, name, params)
        try:
            value = float(
                compute_loss(
                    name,
                    y_true,
                    y_pred,
                    sample_weight=batch.sample_weight,
                    reduction=reduction,
                    **params,
                )
            )
        except UndefinedMetricError as exc:
            out[key] = None
            warnings.append({"loss": key, "message": exc.reason})
            continue
        if omega is None:
            out[key] = finite_or_none(value)
        else:
            out[key] = {"data_loss": value, "penalty": omega, "total": value + omega}
    return out


def default_losses(batch: Batch) -> list[tuple[str, dict[str, Any]]]:
    """The losses a report carries when the request names none."""
    if batch.task == "regression":
        return [("mse", {}), ("mae", {}), ("huber", {})]
    if batch.task == "multiclass":
        return [("cross_entropy", {})]
    if batch.score_type == "logit":
        return [("binary_cross_entropy_with_logits", {})]
    return [("binary_cross_entropy", {})]


def _loss_inputs(
    batch: Batch, name: str, params: dict[str, Any]
) -> tuple[Any, Any, dict[str, Any]]:
    """Targets, outputs and parameters in the form the loss takes.

    A loss with a ``from_logits`` switch gets the scores as posted with the switch set from
    ``score_type``; a loss on probabilities gets probabilities (sigmoid/softmax of logits); a
    loss on logits needs logits.
    """
    spec = get_loss(name)
    if batch.task not in spec.tasks:
        raise InvalidInput(
            f"loss {name!r} does not apply to task {batch.task!r} (it is for "
            f"{', '.join(sorted(spec.tasks))})",
            field="losses",
        )
    y_true: Any = (
        batch.y if batch.task in ("multiclass", "regression") else batch.y.astype(np.float64)
    )
    if batch.task == "regression":
        return y_true, batch.score, params
    if "from_logits" in spec.params and "from_logits" not in params:
        return y_true, batch.score, {**params, "from_logits": batch.score_type == "logit"}
    if spec.input == "probability":
        return y_true, batch.proba, params
    if spec.input == "logit" and batch.score_type != "logit":
        raise InvalidInput(
            f"loss {name!r} takes logits: post score_type='logit' (or use the probability "
            "form of the loss)",
            field="losses",
        )
    return y_true, batch.score, params


def _confusion(ctx: EvalContext) -> dict[str, Any]:
    cm = ctx.confusion
    labels = ctx.batch.class_labels
    if ctx.batch.task == "multilabel":
        return {"labels": labels, "layout": "[[tn, fp], [fn, tp]] per label", "counts": cm}
    return {
        "labels": labels,
        "counts": cm,
        "normalized": {
            norm: _nonfinite_to_none(clf.normalize_confusion(cm, norm))
            for norm in ("true", "pred", "all")
        },
    }


def _per_class(ctx: EvalContext) -> list[dict[str, Any]]:
    per = clf.per_class_report(ctx.confusion)
    rows = []
    for i, label in enumerate(ctx.batch.class_labels):
        rows.append(
            {
                "label": label,
                "precision": finite_or_none(per["precision"][i]),
                "recall": finite_or_none(per["recall"][i]),
                "f1": finite_or_none(per["f1"][i]),
                "support": per["support"][i].item(),
            }
        )
    return rows


def _calibration(ctx: EvalContext) -> dict[str, Any]:
    cal = ctx.calibration
    return {
        "n_bins": ctx.n_bins,
        "strategy": ctx.binning,
        "ece": finite_or_none(cal.ece),
        "mce": finite_or_none(cal.mce),
    }


def _curves(ctx: EvalContext, names: set[str], max_points: int) -> dict[str, Any]:
    b = ctx.batch
    if b.task == "binary":
        rankings = {str(b.class_labels[1]): ctx.ranking}
    else:
        rankings = {str(lab): r for lab, r in zip(b.class_labels, ctx.column_rankings, strict=True)}
    out: dict[str, Any] = {}
    if "roc" in names:
        out["roc"] = {lab: _roc(r, max_points) for lab, r in rankings.items()}
    if "pr" in names:
        out["pr"] = {lab: _pr(r, max_points) for lab, r in rankings.items()}
    if "reliability" in names:
        out["reliability"] = _reliability(ctx)
    return out


def _roc(r: ranking.BinaryRanking, max_points: int) -> dict[str, Any]:
    fpr, tpr, thr = ranking.roc_curve(r)
    try:
        area: float | None = ranking.roc_auc(r)
    except UndefinedMetricError:
        area = None
    fpr, tpr, thr = ranking.downsample_curve(fpr, tpr, thr, max_points)
    return {"fpr": fpr, "tpr": tpr, "thresholds": _nonfinite_to_none(thr), "auc": area}


def _pr(r: ranking.BinaryRanking, max_points: int) -> dict[str, Any]:
    precision, recall, thr = ranking.precision_recall_curve(r)
    try:
        ap: float | None = ranking.average_precision(r)
    except UndefinedMetricError:
        ap = None
    # Thresholds has one entry fewer than precision/recall (the final point has none).
    recall, precision, thr_full = ranking.downsample_curve(
        recall, precision, np.append(thr, np.nan), max_points
    )
    return {
        "precision": precision,
        "recall": recall,
        "thresholds": _nonfinite_to_none(thr_full),
        "average_precision": ap,
    }


def _reliability(ctx: EvalContext) -> dict[str, Any]:
    bins = ctx.calibration.bins
    filled = bins.count > 0
    return {
        "edges": bins.edges,
        "count": bins.count,
        "mean_confidence": _nonfinite_to_none(np.where(filled, bins.mean_confidence, np.nan)),
        "observed_frequency": _nonfinite_to_none(np.where(filled, bins.observed_frequency, np.nan)),
    }


def _nonfinite_to_none(a: Any) -> Any:
    arr = np.asarray(a, dtype=np.float64)
    if np.isfinite(arr).all():
        return arr
    # numpy's stubs leave None out of ArrayLike; np.where takes it as an object scalar.
    return np.where(np.isfinite(arr), arr, None).tolist()  # type: ignore[call-overload]


def headline(report: Mapping[str, Any]) -> dict[str, float | None]:
    """The indexed summary columns of a stored report.

    A segmentation report fills ``accuracy`` with its pixel accuracy and ``f1`` with its mean
    Dice (Dice is the F1 score of a class's pixels).
    """
    m = report.get("metrics", {})

    def first(*names: str) -> float | None:
        for n in names:
            if m.get(n) is not None:
                return float(m[n])
        return None

    return {
        "accuracy": first("accuracy", "pixel_accuracy"),
        "f1": first("f1", "f1_macro", "mean_dice"),
        "roc_auc": first("roc_auc", "roc_auc_ovr", "roc_auc_macro"),
        "average_precision": first("average_precision", "average_precision_macro"),
        "log_loss": first("log_loss"),
        "brier": first("brier"),
        "ece": first("ece"),
        "rmse": first("root_mean_squared_error"),
        "mae": first("mean_absolute_error"),
        "r2": first("r2"),
    }
