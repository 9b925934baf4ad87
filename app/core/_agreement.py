"""Whole-matrix classification metrics: accuracy, balanced accuracy, MCC, kappa, Hamming, top-k.

Part of :mod:`app.core.classification` (import them from there), which states the undefined
value policy: an undefined scalar raises :class:`app.errors.UndefinedMetricError` with a reason.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from app.errors import InvalidInput, UndefinedMetricError

Float = NDArray[np.float64]


def _multiclass(counts: NDArray[Any], metric: str) -> NDArray[Any]:
    c = np.asarray(counts)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise InvalidInput(
            f"{metric} needs a (K, K) multiclass confusion matrix, got shape {c.shape}",
            field="counts",
        )
    return c


def _divide(num: Float, den: Float) -> Float:
    """num / den with NaN where den == 0."""
    out = np.full(np.shape(num), np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _total(c: NDArray[Any], metric: str) -> float:
    total = float(c.sum())
    if total == 0:
        raise UndefinedMetricError(f"{metric} is undefined: the counts are empty (no sample)")
    return total


def accuracy(
    counts: NDArray[Any],
    *,
    sample_weight: Float | None = None,
    y_true: NDArray[Any] | None = None,
    y_pred: NDArray[Any] | None = None,
) -> float:
    """Accuracy ``trace(cm) / sum(cm)``; for multilabel the exact-match (subset) ratio.

    Parameters
    ----------
    counts : ndarray of shape (K, K) or (L, 2, 2)
        A multiclass confusion matrix (``sample_weight``, ``y_true``, ``y_pred`` are then
        ignored), or a multilabel stack, which cannot tell exact matches apart: then
        ``y_true`` and ``y_pred`` are required.
    sample_weight : ndarray of shape (n_samples,), optional
    y_true, y_pred : ndarray of shape (n_samples, n_labels), optional
        Multilabel indicator matrices; a sample counts as correct when all its labels match
        (= ``sklearn.metrics.accuracy_score`` on indicator matrices).

    Examples
    --------
    >>> accuracy(np.array([[1, 1], [0, 2]]))
    0.75
    >>> accuracy(np.zeros((2, 2, 2)), y_true=np.array([[1, 0], [1, 1]]),
    ...          y_pred=np.array([[1, 0], [0, 1]]))
    0.5
    """
    c = np.asarray(counts)
    if c.ndim == 3:
        if y_true is None or y_pred is None:
            raise InvalidInput(
                "multilabel accuracy (exact match) needs y_true and y_pred, not only counts",
                field="counts",
            )
        exact = np.all((np.asarray(y_true) != 0) == (np.asarray(y_pred) != 0), axis=1)
        return float(np.average(exact, weights=sample_weight))
    c = _multiclass(c, "accuracy")
    return float(np.trace(c, dtype=np.float64) / _total(c, "accuracy"))


def balanced_accuracy(counts: NDArray[Any], *, adjusted: bool = False) -> float:
    """Mean recall over the classes present in ``y_true`` (= sklearn ``balanced_accuracy_score``).

    Classes with no true sample are skipped (sklearn warns and skips them too). With
    ``adjusted`` the chance level ``1 / n_present`` maps to 0.

    Raises
    ------
    UndefinedMetricError
        No class has a true sample, or ``adjusted`` with a single class present.

    Examples
    --------
    >>> balanced_accuracy(np.array([[3, 1], [1, 1]]))
    0.625
    """
    c = _multiclass(counts, "balanced_accuracy")
    per_class = _divide(np.diagonal(c).astype(np.float64), c.sum(axis=1).astype(np.float64))
    per_class = per_class[~np.isnan(per_class)]
    if per_class.size == 0:
        raise UndefinedMetricError("balanced_accuracy is undefined: no class has a true sample")
    score = float(np.mean(per_class))
    if adjusted:
        if per_class.size == 1:
            raise UndefinedMetricError(
                "adjusted balanced_accuracy is undefined: y_true has a single class, so the "
                "chance level is 1"
            )
        chance = 1 / per_class.size
        score = (score - chance) / (1 - chance)
    return score


def matthews_corrcoef(counts: NDArray[Any]) -> float:
    """Matthews correlation coefficient, binary or multiclass (Gorodkin's R_K), as sklearn.

    ``(c·s − t·p) / sqrt((s² − p·p)(s² − t·t))`` with ``c`` the trace, ``s`` the total, ``t``
    and ``p`` the true and predicted class totals.

    Raises
    ------
    UndefinedMetricError
        ``y_true`` or ``y_pred`` has a single class (0/0); sklearn returns 0.0 there.

    Examples
    --------
    >>> matthews_corrcoef(np.array([[0, 1], [1, 2]]))
    -0.3333
    """
    c = _multiclass(counts, "matthews_corrcoef")
    t_sum = c.sum(axis=1, dtype=np.float64)
    p_sum = c.sum(axis=0, dtype=np.float64)
    n_correct = np.trace(c, dtype=np.float64)
    n_samples = p_sum.sum()
    cov_ytyp = n_correct * n_samples - np.dot(t_sum, p_sum)
    cov_ypyp = n_samples**2 - np.dot(p_sum, p_sum)
    cov_ytyt = n_samples**2 - np.dot(t_sum, t_sum)
    if cov_ypyp == 0 or cov_ytyt == 0:
        which = "y_true" if cov_ytyt == 0 else "y_pred"
        raise UndefinedMetricError(
            f"matthews_corrcoef is undefined: {which} has a single class (zero variance)"
        )
    return float(cov_ytyp / np.sqrt(cov_ypyp * cov_ytyt))


def cohen_kappa(
    counts: NDArray[Any], *, weights: Literal["linear", "quadratic"] | None = None
) -> float:
    """Cohen's kappa ``1 − Σ w·cm / Σ w·expected`` (= sklearn ``cohen_kappa_score``).

    ``expected`` is the outer product of the marginals over the total; ``w`` is 0/1
    disagreement, or ``|i − j|`` / ``(i − j)²`` over the class indices for "linear" /
    "quadratic" (distances use all K classes, as sklearn with ``labels=range(K)``).

    Raises
    ------
    UndefinedMetricError
        No sample, or the expected disagreement is zero (both raters use one same class).

    Examples
    --------
    >>> cohen_kappa(np.array([[2, 1], [0, 1]]))
    0.5
    """
    if weights not in (None, "linear", "quadratic"):
        raise InvalidInput(
            f"is {weights!r}; expected None, 'linear' or 'quadratic'", field="weights"
        )
    c = _multiclass(counts, "cohen_kappa").astype(np.float64)
    sum0 = c.sum(axis=0)
    sum1 = c.sum(axis=1)
    expected = np.outer(sum0, sum1) / _total(c, "cohen_kappa")
    k = c.shape[0]
    if weights is None:
        w = 1.0 - np.eye(k)
    else:
        d = np.subtract.outer(np.arange(k), np.arange(k)).astype(np.float64)
        w = np.abs(d) if weights == "linear" else d**2
    denominator = np.sum(w * expected)
    if denominator == 0:
        raise UndefinedMetricError(
            "cohen_kappa is undefined: the expected disagreement is zero (both raters put "
            "every sample in the same single class)"
        )
    return float(1 - np.sum(w * c) / denominator)


def hamming_loss(counts: NDArray[Any]) -> float:
    """Fraction of wrong labels (= sklearn ``hamming_loss``).

    Multiclass ``(K, K)``: ``1 − accuracy``. Multilabel ``(L, 2, 2)`` per-label stack:
    ``Σ (fp + fn) / (L · n)`` with ``n`` the (weighted) number of samples.

    Examples
    --------
    >>> hamming_loss(np.array([[1, 1], [0, 2]]))
    0.25
    """
    c = np.asarray(counts)
    if c.ndim == 3:
        if c.shape[0] == 0:
            raise UndefinedMetricError("hamming_loss is undefined: there is no label")
        total = _total(c[0], "hamming_loss")
        wrong = c[:, 0, 1].sum(dtype=np.float64) + c[:, 1, 0].sum(dtype=np.float64)
        return float(wrong / (c.shape[0] * total))
    c = _multiclass(c, "hamming_loss")
    total = _total(c, "hamming_loss")
    return float((total - np.trace(c, dtype=np.float64)) / total)


def top_k_accuracy(
    y_true_idx: NDArray[np.intp],
    y_score: NDArray[np.floating[Any]],
    k: int,
    sample_weight: Float | None = None,
) -> float:
    """Fraction of samples whose true class is among the k highest scores (sklearn exact).

    Parameters
    ----------
    y_true_idx : ndarray of shape (n_samples,)
        Class indices.
    y_score : ndarray of shape (n_samples, K), or (n_samples,) for a binary problem
        Scores or probabilities per class; a 1-D array is the positive-class score.
    k : int >= 1
    sample_weight : ndarray of shape (n_samples,), optional

    Notes
    -----
    Ties are broken as sklearn's ``argsort(kind="mergesort")[:, ::-1]``: among equal scores
    the higher class index ranks first. Here the rank is counted in O(nK) without a sort:
    ``#{j: s_j > s_y} + #{j > y: s_j == s_y} < k``.

    Binary (1-D scores, or a 2-column ``y_score`` whose column 1 is used, as sklearn requires
    the positive-class score): ``k >= 2`` is always a hit; ``k = 1`` predicts class 1 when the
    score exceeds 0.5 if all scores of the batch lie in [0, 1], else 0.
    ``k >= K`` scores 1.0 (sklearn warns that this is meaningless).

    Examples
    --------
    The last row ties classes 0 and 1; class 1 ranks first, so class 0 is only a top-2 hit:

    >>> s = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.4, 0.4, 0.2]])
    >>> top_k_accuracy(np.array([1, 2, 0]), s, k=1)
    0.3333
    >>> top_k_accuracy(np.array([1, 2, 0]), s, k=2)
    1.0
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InvalidInput(f"is {k!r}; must be an integer >= 1", field="k")
    y = np.asarray(y_true_idx)
    s = np.asarray(y_score)
    if s.ndim == 2 and s.shape[1] == 2:
        s = s[:, 1]
    if s.ndim == 1:
        if k >= 2:
            hits = np.ones(y.shape[0], dtype=bool)
        else:
            threshold = 0.5 if s.min() >= 0 and s.max() <= 1 else 0.0
            hits = (s > threshold) == (y == 1)
    else:
        s_true = np.take_along_axis(s, y[:, None], axis=1)
        above = np.count_nonzero(s > s_true, axis=1)
        later = np.arange(s.shape[1]) > y[:, None]
        tied_later = np.count_nonzero((s == s_true) & later, axis=1)
        hits = (above + tied_later) < k
    return float(np.average(hits, weights=sample_weight))
