"""Metric names -> how to compute them from an :class:`EvalContext`.

Names follow scikit-learn's scoring names without the ``neg_`` prefix, values in their natural
sign: ``*_score``-like metrics are higher-is-better, errors and losses lower-is-better.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import numpy as np

from app.core import classification as clf
from app.core import probabilistic as prob
from app.core import ranking, regression
from app.core.batch import Task
from app.core.context import EvalContext
from app.errors import InvalidInput

Compute = Callable[..., float]
CLASSIFICATION: frozenset[Task] = frozenset({"binary", "multiclass", "multilabel"})
SINGLE_LABEL: frozenset[Task] = frozenset({"binary", "multiclass"})


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric.

    ``compute(ctx, **params)`` returns a float or raises ``UndefinedMetricError``.
    """

    name: str
    tasks: frozenset[Task]
    compute: Compute
    greater_is_better: bool
    summary: str
    params: Mapping[str, Any] = field(default_factory=dict)
    #: Computed when the request names no metrics (parametrised variants are opt-in).
    default: bool = True

    def __call__(self, ctx: EvalContext, **params: Any) -> float:
        """The metric on ``ctx``, with the given parameters over the defaults."""
        return float(self.compute(ctx, **{**self.params, **params}))


REGISTRY: dict[str, MetricSpec] = {}


def _register(
    name: str,
    tasks: frozenset[Task],
    compute: Compute,
    *,
    greater_is_better: bool,
    summary: str,
    params: Mapping[str, Any] | None = None,
    default: bool = True,
) -> None:
    REGISTRY[name] = MetricSpec(
        name, tasks, compute, greater_is_better, summary, dict(params or {}), default
    )


# -- count-based metrics, from the confusion matrix at the decision threshold -------------------
_COUNT_METRICS: dict[str, tuple[Callable[..., Any], str]] = {
    "precision": (clf.precision, "TP / (TP + FP)"),
    "recall": (clf.recall, "TP / (TP + FN)"),
    "f1": (clf.f1, "harmonic mean of precision and recall"),
    "fbeta": (clf.fbeta, "(1 + β²)·P·R / (β²·P + R)"),
    "specificity": (clf.specificity, "TN / (TN + FP)"),
    "npv": (clf.npv, "TN / (TN + FN)"),
    "jaccard": (clf.jaccard, "TP / (TP + FP + FN)"),
}


def _counts_metric(
    ctx: EvalContext, *, fn: Callable[..., Any], average: str, **params: Any
) -> float:
    if average == "samples":
        # Per-row counts: the (L, 2, 2) stack is not enough, the metric needs the rows.
        params.update(y_true=ctx.batch.y, y_pred=ctx.y_pred, sample_weight=ctx.weight)
    return float(fn(ctx.confusion, average=average, **params))


for _base, (_fn, _formula) in _COUNT_METRICS.items():
    _params = {"beta": 1.0} if _base == "fbeta" else {}
    _register(
        _base,
        frozenset({"binary"}),
        partial(_counts_metric, fn=_fn, average="binary"),
        greater_is_better=True,
        summary=f"{_base} of the positive class: {_formula}",
        params=_params,
        default=_base != "fbeta",
    )
    for _avg in ("macro", "micro", "weighted", "samples"):
        _tasks: frozenset[Task] = frozenset({"multilabel"}) if _avg == "samples" else CLASSIFICATION
        _register(
            f"{_base}_{_avg}",
            _tasks,
            partial(_counts_metric, fn=_fn, average=_avg),
            greater_is_better=True,
            summary=f"{_base}, {_avg} average over classes: {_formula}",
            params=_params,
            default=_base != "fbeta" and not (_avg != "macro" and _base in ("specificity", "npv")),
        )

_register(
    "accuracy",
    CLASSIFICATION,
    lambda ctx: clf.accuracy(
        ctx.confusion, y_true=ctx.batch.y, y_pred=ctx.y_pred, sample_weight=ctx.weight
    ),
    greater_is_better=True,
    summary="fraction of correct predictions (multilabel: exact-match ratio)",
)
_register(
    "balanced_accuracy",
    SINGLE_LABEL,
    lambda ctx, adjusted=False: clf.balanced_accuracy(ctx.confusion, adjusted=adjusted),
    greater_is_better=True,
    summary="mean recall over classes",
    params={"adjusted": False},
)
_register(
    "matthews_corrcoef",
    SINGLE_LABEL,
    lambda ctx: clf.matthews_corrcoef(ctx.confusion),
    greater_is_better=True,
    summary="Matthews correlation coefficient",
)
_register(
    "cohen_kappa",
    SINGLE_LABEL,
    lambda ctx, weights=None: clf.cohen_kappa(ctx.confusion, weights=weights),
    greater_is_better=True,
    summary="Cohen's kappa (weights: null, linear or quadratic)",
    params={"weights": None},
)
_register(
    "hamming_loss",
    CLASSIFICATION,
    lambda ctx: clf.hamming_loss(ctx.confusion),
    greater_is_better=False,
    summary="fraction of wrong labels",
)
_register(
    "top_k_accuracy",
    frozenset({"multiclass"}),
    lambda ctx, k=2: clf.top_k_accuracy(
        ctx.batch.y, ctx.batch.score, k=int(k), sample_weight=ctx.weight
    ),
    greater_is_better=True,
    summary="the true class is among the k highest scores",
    params={"k": 2},
)


# -- ranking metrics, from the one sort per column ----------------------------------------------
_MulticlassAverage = Literal["macro", "weighted"]
_MultilabelAverage = Literal["macro", "micro", "weighted", "samples"]
_MULTICLASS_AVERAGES: tuple[_MulticlassAverage, ...] = ("macro", "weighted")
_MULTILABEL_AVERAGES: tuple[_MultilabelAverage, ...] = ("macro", "micro", "weighted", "samples")


def _roc_auc_ovr(ctx: EvalContext, *, average: _MulticlassAverage) -> float:
    return ranking.roc_auc_ovr_from_rankings(
        ctx.column_rankings, average=average, names=ctx.batch.class_labels
    )


def _roc_auc_ovo(ctx: EvalContext, *, average: _MulticlassAverage) -> float:
    b = ctx.batch
    return ranking.roc_auc_ovo(
        b.y, b.proba, sample_weight=ctx.weight, average=average, names=b.class_labels
    )


def _multilabel_ranking(
    ctx: EvalContext, *, fn: Callable[..., float], average: _MultilabelAverage
) -> float:
    b = ctx.batch
    return fn(b.y, b.score, sample_weight=ctx.weight, average=average, names=b.class_labels)


_register(
    "roc_auc",
    frozenset({"binary"}),
    lambda ctx: ranking.roc_auc(ctx.ranking),
    greater_is_better=True,
    summary="area under the ROC curve",
)
_register(
    "average_precision",
    frozenset({"binary"}),
    lambda ctx: ranking.average_precision(ctx.ranking),
    greater_is_better=True,
    summary="average precision: Σ (Rₙ − Rₙ₋₁) Pₙ",
)
for _avg in _MULTICLASS_AVERAGES:
    _sfx = "" if _avg == "macro" else "_weighted"
    _register(
        f"roc_auc_ovr{_sfx}",
        frozenset({"multiclass"}),
        partial(_roc_auc_ovr, average=_avg),
        greater_is_better=True,
        summary=f"one-vs-rest ROC-AUC, {_avg} average",
    )
    _register(
        f"roc_auc_ovo{_sfx}",
        frozenset({"multiclass"}),
        partial(_roc_auc_ovo, average=_avg),
        greater_is_better=True,
        summary=f"one-vs-one ROC-AUC (Hand & Till), {_avg} average",
    )
for _avg in _MULTILABEL_AVERAGES:
    for _base, _rank_fn in (
        ("roc_auc", ranking.roc_auc_multilabel),
        ("average_precision", ranking.average_precision_multilabel),
    ):
        _register(
            f"{_base}_{_avg}",
            frozenset({"multilabel"}),
            partial(_multilabel_ranking, fn=_rank_fn, average=_avg),
            greater_is_better=True,
            summary=f"{_base}, {_avg} average over labels",
            # Per-row ranking needs both classes in every row: rarely true, so opt-in.
            default=_avg != "samples",
        )

# -- probabilistic metrics ----------------------------------------------------------------------
_register(
    "log_loss",
    CLASSIFICATION,
    lambda ctx: prob.log_loss_for_task(
        ctx.batch.task, ctx.batch.y, ctx.batch.proba, sample_weight=ctx.weight
    ),
    greater_is_better=False,
    summary="negative log-likelihood of the true class (natural log)",
)
_register(
    "brier",
    CLASSIFICATION,
    lambda ctx: prob.brier_for_task(
        ctx.batch.task, ctx.batch.y, ctx.batch.proba, sample_weight=ctx.weight
    ),
    greater_is_better=False,
    summary="mean squared error of the probabilities",
)
_register(
    "ece",
    CLASSIFICATION,
    lambda ctx: ctx.calibration.ece,
    greater_is_better=False,
    summary="expected calibration error: Σ_b (W_b / W)·|acc_b − conf_b|",
)
_register(
    "mce",
    CLASSIFICATION,
    lambda ctx: ctx.calibration.mce,
    greater_is_better=False,
    summary="maximum calibration error over non-empty bins",
)


# -- regression ---------------------------------------------------------------------------------
def _regression_metric(ctx: EvalContext, *, fn: Callable[..., float]) -> float:
    return fn(ctx.batch.y, ctx.batch.score, sample_weight=ctx.weight)


_REGRESSION: dict[str, tuple[Callable[..., float], bool, str]] = {
    "mean_squared_error": (regression.mean_squared_error, False, "mean (y − ŷ)²"),
    "root_mean_squared_error": (regression.root_mean_squared_error, False, "√ mean (y − ŷ)²"),
    "mean_absolute_error": (regression.mean_absolute_error, False, "mean |y − ŷ|"),
    "median_absolute_error": (regression.median_absolute_error, False, "median |y − ŷ|"),
    "r2": (regression.r2, True, "1 − SS_res / SS_tot"),
    "explained_variance": (regression.explained_variance, True, "1 − Var(y − ŷ) / Var(y)"),
    "max_error": (regression.max_error, False, "max |y − ŷ|"),
    "mean_absolute_percentage_error": (
        regression.mean_absolute_percentage_error,
        False,
        "mean |y − ŷ| / max(|y|, ε)",
    ),
}
for _name, (_rfn, _gib, _summary) in _REGRESSION.items():
    _register(
        _name,
        frozenset({"regression"}),
        partial(_regression_metric, fn=_rfn),
        greater_is_better=_gib,
        summary=_summary,
    )


def resolve(
    task: Task, requested: list[tuple[str, dict[str, Any]]] | None
) -> list[tuple[MetricSpec, dict[str, Any]]]:
    """The metrics to compute for ``task``: the requested ones (checked) or the defaults.

    Raises
    ------
    InvalidInput
        An unknown name, a metric that does not apply to the task, or an unknown parameter.
    """
    if requested is None:
        return [(s, {}) for s in REGISTRY.values() if task in s.tasks and s.default]
    out = []
    for name, params in requested:
        spec = REGISTRY.get(name)
        if spec is None:
            known = sorted(n for n, s in REGISTRY.items() if task in s.tasks)
            raise InvalidInput(
                f"unknown metric {name!r}; metrics for task {task!r}: {', '.join(known)}",
                field="metrics",
            )
        if task not in spec.tasks:
            raise InvalidInput(
                f"metric {name!r} does not apply to task {task!r} (it is for "
                f"{', '.join(sorted(spec.tasks))})",
                field="metrics",
            )
        unknown = set(params) - set(spec.params)
        if unknown:
            allowed = ", ".join(spec.params) or "none"
            raise InvalidInput(
                f"metric {name!r} takes no parameter {sorted(unknown)[0]!r} (allowed: {allowed})",
                field="metrics",
            )
        out.append((spec, params))
    return out


def metric_key(name: str, params: Mapping[str, Any]) -> str:
    """The report key: the name, with parameters when they were given (``fbeta[beta=2]``)."""
    if not params:
        return name
    inner = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
    return f"{name}[{inner}]"


def finite_or_none(value: float) -> float | None:
    """Guard for the JSON boundary: a non-finite number never reaches a client."""
    return float(value) if np.isfinite(value) else None
