"""Confusion-count classification metrics, computed from counts so slices and resamples reuse them.

Build the counts once (:func:`confusion_matrix`, :func:`multilabel_confusion` or
:func:`binary_confusion_from_counts`), then call any metric on them; each metric is O(K²) on
the counts. The ``counts`` argument is read as:

- ``(K, K)``: a multiclass confusion matrix (rows true, columns predicted). A binary problem is
  the ``K = 2`` case with class 1 positive.
- ``(L, 2, 2)``: one ``[[tn, fp], [fn, tp]]`` per label (multilabel), or, with
  ``average="samples"`` only, one per sample (``multilabel_confusion(..., samplewise=True)``);
  ``average="samples"`` may instead take the indicator matrices as ``y_true=``, ``y_pred=``.

``average`` follows sklearn: ``"binary"`` (the one-vs-rest score of class ``pos_label``),
``"micro"`` (pool the counts), ``"macro"`` (unweighted mean over classes), ``"weighted"``
(mean weighted by support ``tp + fn``), ``"samples"`` (multilabel, mean over samples weighted
by ``sample_weight``), ``None`` (the per-class array).

Undefined values (zero division)
--------------------------------
The service reports an undefined metric as ``null`` plus a warning, never as a silent 0 or NaN:

- A scalar result that is undefined raises :class:`app.errors.UndefinedMetricError` whose
  ``reason`` says why, e.g. ``"precision of class 1 is undefined: no sample was predicted as
  class 1 (tp + fp = 0)"``.
- A per-class array (``average=None``) holds NaN for each undefined class; that array tells the
  caller which classes an average excluded.
- ``"macro"``, ``"weighted"`` and ``"samples"`` averages skip the NaN entries exactly like
  sklearn with ``zero_division=np.nan`` (weights that sum to 0 after skipping fall back to the
  plain mean, as sklearn's ``_nanaverage``); if every entry is NaN they raise. ``"micro"``
  raises when the pooled denominator is 0.
- Where sklearn substitutes a value for 0/0 we raise instead: ``matthews_corrcoef`` with a
  single class in ``y_true`` or ``y_pred`` (sklearn: 0.0), ``cohen_kappa`` with zero expected
  disagreement (sklearn: NaN), adjusted ``balanced_accuracy`` with one class present.

Beyond sklearn: ``average="binary"`` also scores one class of a K > 2 matrix or one label of a
stack (sklearn refuses), and :func:`specificity` / :func:`npv` exist (sklearn has none).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypedDict

import numpy as np
from numpy.typing import NDArray

from app.core._agreement import (
    _divide,
    accuracy,
    balanced_accuracy,
    cohen_kappa,
    hamming_loss,
    matthews_corrcoef,
    top_k_accuracy,
)
from app.core._confusion import (
    binary_confusion_from_counts,
    confusion_matrix,
    multilabel_confusion,
    normalize_confusion,
)
from app.errors import InvalidInput, UndefinedMetricError

__all__ = [
    "ClassReport",
    "accuracy",
    "balanced_accuracy",
    "binary_confusion_from_counts",
    "cohen_kappa",
    "confusion_matrix",
    "f1",
    "fbeta",
    "hamming_loss",
    "jaccard",
    "matthews_corrcoef",
    "multilabel_confusion",
    "normalize_confusion",
    "npv",
    "per_class_report",
    "precision",
    "recall",
    "specificity",
    "top_k_accuracy",
]

Average = Literal["binary", "micro", "macro", "weighted", "samples"] | None
_AVERAGES = ("binary", "micro", "macro", "weighted", "samples", None)
Float = NDArray[np.float64]
_Counts = tuple[Float, Float, Float, Float]


def _one_vs_rest(counts: NDArray[Any]) -> _Counts:
    """(tp, fp, fn, tn) per class of a (K, K) matrix or per entry of an (L, 2, 2) stack."""
    c = np.asarray(counts)
    if c.ndim == 3 and c.shape[1:] == (2, 2):
        tn, fp, fn, tp = c[:, 0, 0], c[:, 0, 1], c[:, 1, 0], c[:, 1, 1]
    elif c.ndim == 2 and c.shape[0] == c.shape[1]:
        tp = np.diagonal(c)
        fp = c.sum(axis=0) - tp
        fn = c.sum(axis=1) - tp
        tn = c.sum() - tp - fp - fn
    else:
        raise InvalidInput(
            f"must be a (K, K) confusion matrix or an (L, 2, 2) stack, got shape {c.shape}",
            field="counts",
        )
    return tuple(np.asarray(a, dtype=np.float64) for a in (tp, fp, fn, tn))  # type: ignore[return-value]


def _ratio_metric(
    counts: NDArray[Any],
    name: str,
    formula: Callable[[Float, Float, Float, Float], tuple[Float, Float]],
    why: str,
    average: Average,
    pos_label: int,
    sample_weight: Float | None,
    y_true: NDArray[Any] | None,
    y_pred: NDArray[Any] | None,
) -> float | Float:
    """Shared engine: ``formula(tp, fp, fn, tn) -> (numerator, denominator)``, then average.

    ``why`` completes "no sample ..." in the reason of an undefined value, with ``{c}`` for the
    class; e.g. ``"was predicted as {c} (tp + fp = 0)"``.
    """
    if average not in _AVERAGES:
        raise InvalidInput(f"is {average!r}; expected one of {list(_AVERAGES)}", field="average")
    c = np.asarray(counts)
    if average == "samples":
        if y_true is not None and y_pred is not None:
            c = multilabel_confusion(y_true, y_pred, sample_weight, samplewise=True)
        elif c.ndim != 3:
            raise InvalidInput(
                "'samples' averaging is for multilabel data: pass y_true and y_pred "
                "(n_samples, n_labels) or the samplewise stack",
                field="average",
            )
    tp, fp, fn, tn = _one_vs_rest(c)
    if average == "micro":
        num, den = formula(tp.sum(), fp.sum(), fn.sum(), tn.sum())
        if den == 0:
            raise UndefinedMetricError(
                f"micro-averaged {name} is undefined: summed over classes, no sample "
                + why.format(c="any class")
            )
        return float(num / den)
    num, den = formula(tp, fp, fn, tn)
    per_class = _divide(num, den)
    if average is None:
        return per_class
    if average == "binary":
        k = per_class.shape[0]
        if not 0 <= pos_label < k:
            raise InvalidInput(
                f"is {pos_label}; expected a class index in [0, {k})", field="pos_label"
            )
        if np.isnan(per_class[pos_label]):
            what = f"class {pos_label}"
            raise UndefinedMetricError(
                f"{name} of {what} is undefined: no sample " + why.format(c=what)
            )
        return float(per_class[pos_label])
    keep = ~np.isnan(per_class)
    weights: Float | None = None
    if average == "weighted":
        weights = tp + fn
    elif average == "samples" and sample_weight is not None:
        keep &= sample_weight > 0
        weights = sample_weight
    if not keep.any():
        unit = "sample" if average == "samples" else "class"
        raise UndefinedMetricError(
            f"{average}-averaged {name} is undefined: it is undefined for every {unit}: "
            "no sample " + why.format(c=f"that {unit}")
        )
    values = per_class[keep]
    # sklearn's _nanaverage: weights summing to zero fall back to the plain mean.
    if weights is None or not weights[keep].any():
        return float(np.mean(values))
    return float(np.average(values, weights=weights[keep]))


def precision(
    counts: NDArray[Any],
    *,
    average: Average = "binary",
    pos_label: int = 1,
    sample_weight: Float | None = None,
    y_true: NDArray[Any] | None = None,
    y_pred: NDArray[Any] | None = None,
) -> float | Float:
    """Precision ``tp / (tp + fp)``; undefined when nothing is predicted positive.

    Parameters
    ----------
    counts : ndarray of shape (K, K) or (L, 2, 2)
        See the module docstring.
    average : {"binary", "micro", "macro", "weighted", "samples"} or None, default "binary"
    pos_label : int, default 1
        Class index scored by ``average="binary"``.
    sample_weight : ndarray of shape (n_samples,), optional
        Only for ``average="samples"``, whose mean over samples it weights.
    y_true, y_pred : ndarray of shape (n_samples, n_labels), optional
        Only for ``average="samples"``: the multilabel indicator matrices, from which the
        samplewise counts are built (else ``counts`` must be that samplewise stack).

    Returns
    -------
    float, or ndarray of shape (K,) with NaN for undefined classes when ``average=None``.
    Equals ``sklearn.metrics.precision_score(..., zero_division=np.nan)``.

    Examples
    --------
    >>> cm = confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2)
    >>> precision(cm)
    0.6667
    >>> precision(cm, average=None)
    array([1.    , 0.6667])
    """
    return _ratio_metric(
        counts,
        "precision",
        lambda tp, fp, fn, tn: (tp, tp + fp),
        "was predicted as {c} (tp + fp = 0)",
        average,
        pos_label,
        sample_weight,
        y_true,
        y_pred,
    )


def recall(
    counts: NDArray[Any],
    *,
    average: Average = "binary",
    pos_label: int = 1,
    sample_weight: Float | None = None,
    y_true: NDArray[Any] | None = None,
    y_pred: NDArray[Any] | None = None,
) -> float | Float:
    """Recall (sensitivity) ``tp / (tp + fn)``; undefined for a class with no true sample.

    Parameters and returns as :func:`precision`; equals ``sklearn.metrics.recall_score``.

    Examples
    --------
    >>> recall(confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2))
    1.0
    """
    return _ratio_metric(
        counts,
        "recall",
        lambda tp, fp, fn, tn: (tp, tp + fn),
        "is in {c} (tp + fn = 0)",
        average,
        pos_label,
        sample_weight,
        y_true,
        y_pred,
    )


def specificity(
    counts: NDArray[Any],
    *,
    average: Average = "binary",
    pos_label: int = 1,
    sample_weight: Float | None = None,
    y_true: NDArray[Any] | None = None,
    y_pred: NDArray[Any] | None = None,
) -> float | Float:
    """Specificity (true negative rate) ``tn / (tn + fp)``; undefined with no negative sample.

    Parameters and returns as :func:`precision`; ``"weighted"`` weights by the support
    ``tp + fn`` like the other metrics. A class absent from ``y_true`` and ``y_pred`` has
    specificity 1 (all its rows are true negatives) and counts in the macro average.

    Examples
    --------
    >>> specificity(confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2))
    0.5
    """
    return _ratio_metric(
        counts,
        "specificity",
        lambda tp, fp, fn, tn: (tn, tn + fp),
        "is outside {c} (tn + fp = 0)",
        average,
        pos_label,
        sample_weight,
        y_true,
        y_pred,
    )


def npv(
    counts: NDArray[Any],
    *,
    average: Average = "binary",
    pos_label: int = 1,
    sample_weight: Float | None = None,
    y_true: NDArray[Any] | None = None,
    y_pred: NDArray[Any] | None = None,
) -> float | Float:
    """Negative predictive value ``tn / (tn + fn)``; undefined when nothing is predicted negative.

    Parameters and returns as :func:`precision`.

    Examples
    --------
    >>> npv(confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2))
    1.0
    """
    return _ratio_metric(
        counts,
        "npv",
        lambda tp, fp, fn, tn: (tn, tn + fn),
        "was predicted outside {c} (tn + fn = 0)",
        average,
        pos_label,
        sample_weight,
        y_true,
        y_pred,
    )


def jaccard(
    counts: NDArray[Any],
    *,
    average: Average = "binary",
    pos_label: int = 1,
    sample_weight: Float | None = None,
    y_true: NDArray[Any] | None = None,
    y_pred: NDArray[Any] | None = None,
) -> float | Float:
    """Jaccard index (IoU) ``tp / (tp + fp + fn)``; undefined for a class nowhere present.

    Parameters and returns as :func:`precision`. sklearn's ``jaccard_score`` has no
    ``zero_division=nan``; ours equals it restricted to the classes present in ``y_true`` or
    ``y_pred`` (its default ``labels``).

    Examples
    --------
    >>> jaccard(confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2))
    0.6667
    """
    return _ratio_metric(
        counts,
        "jaccard",
        lambda tp, fp, fn, tn: (tp, tp + fp + fn),
        "is in or was predicted as {c} (tp + fp + fn = 0)",
        average,
        pos_label,
        sample_weight,
        y_true,
        y_pred,
    )


def fbeta(
    counts: NDArray[Any],
    *,
    beta: float,
    average: Average = "binary",
    pos_label: int = 1,
    sample_weight: Float | None = None,
    y_true: NDArray[Any] | None = None,
    y_pred: NDArray[Any] | None = None,
) -> float | Float:
    """F-beta ``(1 + β²) tp / ((1 + β²) tp + β² fn + fp)``, sklearn's count form.

    Undefined only when a class is neither true nor predicted (``tp + fn = tp + fp = 0``); a
    class whose precision alone is undefined scores 0, as in sklearn. ``beta = 0`` is
    precision, ``beta = inf`` recall.

    Parameters and returns as :func:`precision`; ``beta`` must be >= 0.

    Examples
    --------
    >>> cm = confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2)
    >>> fbeta(cm, beta=2.0)
    0.9091
    """
    b = float(beta)
    if not b >= 0:
        raise InvalidInput(f"is {beta!r}; must be >= 0", field="beta")
    extra: dict[str, Any] = {"sample_weight": sample_weight, "y_true": y_true, "y_pred": y_pred}
    if np.isposinf(b):
        return recall(counts, average=average, pos_label=pos_label, **extra)
    if b == 0:
        return precision(counts, average=average, pos_label=pos_label, **extra)
    b2 = b * b
    return _ratio_metric(
        counts,
        f"f{b:g}" if b != 1 else "f1",
        lambda tp, fp, fn, tn: ((1 + b2) * tp, b2 * (tp + fn) + (tp + fp)),
        "is in or was predicted as {c} (tp + fn = tp + fp = 0)",
        average,
        pos_label,
        sample_weight,
        y_true,
        y_pred,
    )


def f1(
    counts: NDArray[Any],
    *,
    average: Average = "binary",
    pos_label: int = 1,
    sample_weight: Float | None = None,
    y_true: NDArray[Any] | None = None,
    y_pred: NDArray[Any] | None = None,
) -> float | Float:
    """F1 score, :func:`fbeta` with ``beta = 1``.

    Examples
    --------
    >>> f1(confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2))
    0.8
    """
    return fbeta(
        counts,
        beta=1.0,
        average=average,
        pos_label=pos_label,
        sample_weight=sample_weight,
        y_true=y_true,
        y_pred=y_pred,
    )


class ClassReport(TypedDict):
    """Per-class precision, recall, F1 and support, each of shape (K,); NaN where undefined."""

    precision: Float
    recall: Float
    f1: Float
    support: NDArray[Any]


def per_class_report(counts: NDArray[Any]) -> ClassReport:
    """Per-class table like ``sklearn.metrics.classification_report(zero_division=np.nan)``.

    Parameters
    ----------
    counts : ndarray of shape (K, K) or (L, 2, 2)

    Returns
    -------
    ClassReport
        ``support`` is the (weighted) number of true samples per class, ``tp + fn``.

    Examples
    --------
    >>> r = per_class_report(np.array([[1, 1], [0, 2]]))
    >>> r["precision"], r["support"]
    (array([1.    , 0.6667]), array([2, 2]))
    """
    c = np.asarray(counts)
    support = c.sum(axis=1) if c.ndim == 2 else c[:, 1, 0] + c[:, 1, 1]
    return ClassReport(
        precision=np.asarray(precision(c, average=None)),
        recall=np.asarray(recall(c, average=None)),
        f1=np.asarray(f1(c, average=None)),
        support=support,
    )
