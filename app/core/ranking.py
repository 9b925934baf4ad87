"""Ranking metrics: ROC-AUC and average precision, binary, multiclass and multilabel.

Every metric reads a :class:`~app.core.curves.BinaryRanking` (one sort per binary column, see
:func:`rank_binary`) and costs O(n_thresholds) after it. Values equal scikit-learn's
``sklearn.metrics`` (1.9) except where an undefined value raises
:class:`app.errors.UndefinedMetricError` instead of returning NaN or 0; each function says where.
The ranking, curves and operating points live in :mod:`app.core.curves` and are re-exported here,
so ``ranking`` is the one import for callers.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import rankdata

from app.core.curves import (
    BinaryRanking,
    ConfusionCounts,
    Counts,
    OperatingPoints,
    _from_descending,
    counts_at_threshold,
    downsample_curve,
    operating_points,
    precision_recall_curve,
    rank_binary,
    roc_curve,
)
from app.errors import InvalidInput, UndefinedMetricError

__all__ = [
    "BinaryRanking",
    "ConfusionCounts",
    "Counts",
    "OperatingPoints",
    "RocAucOfScores",
    "average_precision",
    "average_precision_multilabel",
    "counts_at_threshold",
    "downsample_curve",
    "operating_points",
    "precision_recall_curve",
    "rank_binary",
    "roc_auc",
    "roc_auc_multilabel",
    "roc_auc_ovo",
    "roc_auc_ovr",
    "roc_auc_ovr_from_rankings",
    "roc_curve",
]

Float = NDArray[np.float64]
MulticlassAverage = Literal["macro", "weighted"] | None
MultilabelAverage = Literal["macro", "micro", "weighted", "samples"] | None


# -- scalar metrics ------------------------------------------------------------------------------


def _require_both_classes(r: BinaryRanking, metric: str) -> None:
    what = "with non-zero weight " if r.weighted else ""
    if r.n_pos <= 0:
        raise UndefinedMetricError(
            f"{metric} is undefined: y_true has no positive samples {what}(only the negative "
            "class is present)"
        )
    if r.n_neg <= 0:
        raise UndefinedMetricError(
            f"{metric} is undefined: y_true has no negative samples {what}(only the positive "
            "class is present)"
        )


def roc_auc(r: BinaryRanking) -> float:
    """Area under the ROC curve, equal to ``sklearn.metrics.roc_auc_score`` (binary).

    .. math:: \\mathrm{AUC} = \\frac{1}{2 P N} \\sum_i (F_i - F_{i-1}) (T_i + T_{i-1}),
       \\quad T_{-1} = F_{-1} = 0,

    the trapezoids of the ROC curve through the cumulative counts ``T = tps``, ``F = fps``;
    equivalently P(score⁺ > score⁻) + ½ P(tie), the Mann–Whitney U over ``P·N``. Tied scores
    of a positive and a negative count one half.

    Without weights the sum is an exact integer (int64 up to ~4·10⁹ rows) and the result is
    its correctly rounded ratio; with weights it is a float64 pairwise sum.

    Raises
    ------
    UndefinedMetricError
        Only one class present (or one class has zero total weight). sklearn warns and
        returns NaN.

    Examples
    --------
    >>> roc_auc(rank_binary(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])))
    0.75
    """
    _require_both_classes(r, "ROC AUC")
    tps, fps = r.tps, r.fps
    n_pos, n_neg = r.n_pos, r.n_neg
    tsum = tps.copy()  # T_i + T_{i-1}
    tsum[1:] += tps[:-1]
    dfps = np.empty_like(fps)  # F_i - F_{i-1}
    dfps[0] = fps[0]
    np.subtract(fps[1:], fps[:-1], out=dfps[1:])
    if not r.weighted and 2 * n_pos * n_neg < 2**63:
        # Every term and partial sum is a non-negative integer <= 2·P·N: exact in int64.
        return int(np.dot(dfps, tsum)) / (2 * int(n_pos) * int(n_neg))
    dfps = dfps.astype(np.float64, copy=False)
    dfps *= tsum
    return float(dfps.sum() / 2 / n_pos / n_neg)


class RocAucOfScores:
    """ROC AUC of many score columns against one fixed binary ``y_true`` (unweighted).

    For scoring the same labels over and over (the permuted copies of permutation
    importance). The value is :func:`roc_auc`'s, in its Mann–Whitney form,

    .. math::

        \\mathrm{AUC} = \\frac{1}{2PN} \\sum_{p} \\big(\\#\\{n : s_n < s_p\\}
        + \\#\\{n : s_n \\le s_p\\}\\big),

    an exact integer ratio, so it equals ``roc_auc(rank_binary(y_true, s))`` to the last bit.
    Both counts come from one sort of 64-bit keys ``2·key(s) + bit`` (``key`` orders float32
    bit patterns as integers): with ``bit`` = 1 on positives, tied negatives sort below a
    positive and the ``t``-th positive sits at position ``t + #{s_n ≤ s_p}``; with ``bit`` = 1
    on negatives it sits at ``t + #{s_n < s_p}``. The second sort is only done when the first
    finds equal scores. One in-place value sort and a dot product, in per-thread buffers (fresh
    large temporaries cost page faults on every call): a third of the cost of
    :func:`rank_binary` (an argsort, a merge and cumulative sums), which this falls back to for
    scores that are not float32 or hold NaN. Calls from several threads run in parallel.

    Examples
    --------
    >>> auc = RocAucOfScores(np.array([0, 0, 1, 1]))
    >>> auc(np.array([0.1, 0.4, 0.35, 0.8], dtype=np.float32)), auc(np.array([1.0, 0, 1, 0]))
    (0.75, 0.5)
    """

    def __init__(self, y_true: ArrayLike) -> None:
        y = np.asarray(y_true)
        if y.ndim != 1 or (y.dtype != np.bool_ and not np.isin(y, (0, 1)).all()):
            raise InvalidInput("must be 1-D, bool or 0/1", field="y_true")
        self.y = y != 0
        self.n_pos = int(np.count_nonzero(self.y))
        self.n_neg = self.y.shape[0] - self.n_pos
        self._pos_bit = self.y.astype(np.int64)
        self._neg_bit = 1 - self._pos_bit
        self._positions = np.arange(self.y.shape[0], dtype=np.int64)
        self._local = threading.local()

    def _buffers(self) -> tuple[NDArray[np.float32], NDArray[np.int64], NDArray[np.int64]]:
        bufs = getattr(self._local, "bufs", None)
        if bufs is None:
            n = self.y.shape[0]
            bufs = (np.empty(n, np.float32), np.empty(n, np.int64), np.empty(n, np.int64))
            self._local.bufs = bufs
        return bufs

    def __call__(self, scores: ArrayLike) -> float:
        """The ROC AUC of ``scores`` (shape ``(n,)``).

        Raises
        ------
        UndefinedMetricError
            Only one class in ``y_true``.
        """
        s = np.asarray(scores)
        if s.shape != self.y.shape:
            raise InvalidInput(f"has shape {s.shape}, expected {self.y.shape}", field="y_score")
        P, N = self.n_pos, self.n_neg
        if s.dtype != np.float32 or P == 0 or N == 0 or np.isnan(s).any():
            return roc_auc(rank_binary(self.y, s))  # (raises the one-class error)
        f32, key, work = self._buffers()
        # Integers in the order of the floats: negative floats get their magnitude bits
        # flipped; +0.0 is added first so that -0.0 and 0.0 are one key.
        np.add(s, np.float32(0.0), out=f32)
        np.copyto(key, f32.view(np.int32))
        np.right_shift(key, 31, out=work)
        np.bitwise_and(work, 0x7FFFFFFF, out=work)
        np.bitwise_xor(key, work, out=key)
        np.left_shift(key, 1, out=key)
        np.bitwise_or(key, self._pos_bit, out=work)
        work.sort()  # ties: negatives first
        # Equal scores have keys that differ in the tie bit at most.
        tied = bool((np.bitwise_xor(work[1:], work[:-1], out=key[:-1]) < 2).any())
        offset = P * (P - 1) // 2  # Σ t over the positives
        le = int(np.dot(np.bitwise_and(work, 1, out=key), self._positions)) - offset
        lt = le
        if tied:
            np.bitwise_xor(work, 1, out=work)  # the tie bit on the negatives instead
            work.sort()  # ties: positives first
            n = P + N
            on_negatives = int(np.dot(np.bitwise_and(work, 1, out=key), self._positions))
            lt = n * (n - 1) // 2 - on_negatives - offset
        return (le + lt) / (2 * P * N)


def average_precision(r: BinaryRanking) -> float:
    """Average precision, equal to ``sklearn.metrics.average_precision_score`` (binary).

    .. math:: \\mathrm{AP} = \\sum_i (R_i - R_{i-1}) P_i
       = \\frac{1}{P} \\sum_i (T_i - T_{i-1}) \\frac{T_i}{T_i + F_i}

    over the distinct thresholds from the highest (not interpolated; a tie group counts as
    one step). Computed as one float64 pairwise sum.

    Raises
    ------
    UndefinedMetricError
        No positive samples (or zero positive weight). sklearn warns and returns 0.

    Examples
    --------
    >>> average_precision(rank_binary(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])))
    0.8333333333333333
    """
    if r.n_pos <= 0:
        what = " with non-zero weight" if r.weighted else ""
        raise UndefinedMetricError(
            f"average precision is undefined: y_true has no positive samples{what}"
        )
    tps = r.tps
    terms = np.add(tps, r.fps, dtype=np.float64)  # P_i = T_i / (T_i + F_i)
    np.divide(tps, terms, out=terms)
    terms[0] *= tps[0]
    terms[1:] *= tps[1:] - tps[:-1]  # (T_i - T_{i-1}) P_i
    return float(terms.sum() / r.n_pos)


# -- multiclass and multilabel averages -----------------------------------------------------------


def _describe(kind: str, idx: Sequence[int] | NDArray[Any], names: Sequence[Any] | None) -> str:
    """``"class 2"``, ``"labels 'cat', 'dog'"``; at most ten named."""
    idx = [int(i) for i in idx]
    shown = [repr(names[i]) if names is not None else str(i) for i in idx[:10]]
    more = f" and {len(idx) - 10} more" if len(idx) > 10 else ""
    plural = "es" if kind.endswith("s") else "s"
    return f"{kind}{plural if len(idx) > 1 else ''} {', '.join(shown)}{more}"


def _check_average(average: Any, allowed: tuple[Any, ...]) -> None:
    if average not in allowed:
        raise InvalidInput(f"is {average!r}; expected one of {list(allowed)}", field="average")


def _weights(sample_weight: ArrayLike | None, n: int) -> Float | None:
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,):
        raise InvalidInput(f"has shape {w.shape}, expected ({n},)", field="sample_weight")
    if w.min() < 0 or not w.any():
        raise InvalidInput("weights must be >= 0 and not all zero", field="sample_weight")
    return w


def _multiclass_inputs(
    y_true_idx: ArrayLike, y_score: ArrayLike, sample_weight: ArrayLike | None
) -> tuple[NDArray[np.intp], NDArray[np.floating[Any]], Float | None]:
    y = np.asarray(y_true_idx)
    s = np.asarray(y_score)
    if s.dtype.kind != "f":
        s = s.astype(np.float64)
    if s.ndim != 2 or y.shape != (s.shape[0],) or s.shape[0] == 0:
        raise InvalidInput(
            f"y_true_idx must be (n,) and y_score (n, K) with n >= 1, got {y.shape} and {s.shape}",
            field="y_score",
        )
    if y.dtype.kind not in "iu" or (y < 0).any() or (y >= s.shape[1]).any():
        raise InvalidInput(f"must hold class indices in [0, {s.shape[1]})", field="y_true_idx")
    return y.astype(np.intp, copy=False), s, _weights(sample_weight, s.shape[0])


def _raise_absent(class_weight: NDArray[Any], names: Sequence[Any] | None, metric: str) -> None:
    absent = np.flatnonzero(class_weight <= 0)
    if absent.size:
        raise UndefinedMetricError(
            f"{metric} is undefined: {_describe('class', absent, names)} "
            f"{'has' if absent.size == 1 else 'have'} no samples (with non-zero weight) in y_true"
        )


@overload
def roc_auc_ovr_from_rankings(
    rankings: Sequence[BinaryRanking],
    *,
    average: Literal["macro", "weighted"] = ...,
    names: Sequence[Any] | None = ...,
) -> float: ...
@overload
def roc_auc_ovr_from_rankings(
    rankings: Sequence[BinaryRanking],
    *,
    average: None,
    names: Sequence[Any] | None = ...,
) -> Float: ...
def roc_auc_ovr_from_rankings(
    rankings: Sequence[BinaryRanking],
    *,
    average: MulticlassAverage = "macro",
    names: Sequence[Any] | None = None,
) -> float | Float:
    """One-vs-rest ROC-AUC from one ranking per class (``y == k`` against column ``k``).

    ``average``: ``"macro"`` the mean over classes, ``"weighted"`` weighted by prevalence (the
    positive weight ``n_pos`` of each ranking), ``None`` the per-class array. Equal to
    ``roc_auc_score(y, y_score, multi_class="ovr", average=...)``.

    Raises
    ------
    UndefinedMetricError
        A class without samples (or with zero total weight), named in the reason. sklearn
        raises for an absent class; for a class present only with zero weight it returns NaN
        (macro) or skips it (weighted): here that class counts as absent in every average.

    Examples
    --------
    >>> y = np.array([0, 1, 2, 2])
    >>> p = np.array([[.6, .2, .2], [.3, .4, .3], [.1, .2, .7], [.2, .5, .3]])
    >>> roc_auc_ovr_from_rankings([rank_binary(y == k, p[:, k]) for k in range(3)])
    0.8472222222222222
    """
    _check_average(average, ("macro", "weighted", None))
    if not rankings:
        raise InvalidInput("needs at least one class", field="y_score")
    prevalence = np.array([r.n_pos for r in rankings], dtype=np.float64)
    _raise_absent(prevalence, names, "one-vs-rest ROC AUC")
    scores = np.array([roc_auc(r) for r in rankings])
    if average is None:
        return scores
    return float(np.average(scores, weights=prevalence if average == "weighted" else None))


def roc_auc_ovr(
    y_true_idx: ArrayLike,
    y_score: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    average: Literal["macro", "weighted", "micro"] | None = "macro",
    names: Sequence[Any] | None = None,
) -> float | Float:
    """One-vs-rest multiclass ROC-AUC, ``roc_auc_score(multi_class="ovr")``.

    Parameters
    ----------
    y_true_idx : array-like of int, shape (n_samples,)
        Class index of each row, in ``[0, K)``.
    y_score : array-like of shape (n_samples, K)
        Column ``k`` scores class ``k`` (probabilities in sklearn; any score works here).
    sample_weight : array-like of shape (n_samples,), optional
    average : {"macro", "weighted", "micro", None}, default "macro"
        As :func:`roc_auc_ovr_from_rankings`; ``"micro"`` ranks the ``n·K`` one-hot cells as one
        binary problem (one sort of ``n·K`` scores).
    names : sequence, optional
        Class names for error messages (default: the column index).

    Raises
    ------
    UndefinedMetricError
        As :func:`roc_auc_ovr_from_rankings` (also for ``"micro"``, like sklearn).

    Examples
    --------
    >>> y = np.array([0, 1, 2, 2])
    >>> p = np.array([[.6, .2, .2], [.3, .4, .3], [.1, .2, .7], [.2, .5, .3]])
    >>> roc_auc_ovr(y, p, average="weighted")
    0.8541666666666666
    """
    _check_average(average, ("macro", "weighted", "micro", None))
    y, s, w = _multiclass_inputs(y_true_idx, y_score, sample_weight)
    k = s.shape[1]
    if average == "micro":
        _raise_absent(np.bincount(y, weights=w, minlength=k), names, "one-vs-rest ROC AUC")
        onehot = y[:, None] == np.arange(k)
        cells_w = None if w is None else np.repeat(w, k)
        return roc_auc(rank_binary(onehot.ravel(), s.ravel(), cells_w))
    rankings = [rank_binary(y == c, s[:, c], w) for c in range(k)]
    return roc_auc_ovr_from_rankings(rankings, average=average, names=names)


def roc_auc_ovo(
    y_true_idx: ArrayLike,
    y_score: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    average: MulticlassAverage = "macro",
    names: Sequence[Any] | None = None,
) -> float:
    """One-vs-one multiclass ROC-AUC (Hand & Till 2001), ``roc_auc_score(multi_class="ovo")``.

    .. math:: \\frac{1}{\\sum_{a<b} v_{ab}} \\sum_{a<b} v_{ab}
       \\frac{A(a|b) + A(b|a)}{2}

    where ``A(a|b)`` is the ROC-AUC of column ``a`` on the rows of classes ``a`` and ``b``
    (class ``a`` positive), and ``v_ab = 1`` ("macro") or the prevalence of the pair,
    ``(W_a + W_b) / W`` ("weighted"; ``W_c`` the weight of class ``c``).

    Each column is sorted once; a pair's ranking is the sorted column filtered to the pair's
    rows (filtering keeps the order), not a new sort: K sorts instead of sklearn's K(K-1).

    Parameters
    ----------
    y_true_idx, y_score, names
        As :func:`roc_auc_ovr`.
    sample_weight : array-like of shape (n_samples,), optional
        sklearn's ovo refuses weights. Here each ``A(a|b)`` is the weighted binary ROC-AUC of
        the pair's rows and ``W_c`` are weight sums: the natural generalization, equal to the
        unweighted value with integer weights replaced by repeated rows.
    average : {"macro", "weighted"}, default "macro"

    Raises
    ------
    UndefinedMetricError
        A class without samples (or with zero total weight), named in the reason.

    Examples
    --------
    >>> y = np.array([0, 1, 2, 2])
    >>> p = np.array([[.6, .2, .2], [.3, .4, .3], [.1, .2, .7], [.2, .5, .3]])
    >>> roc_auc_ovo(y, p)
    0.875
    """
    _check_average(average, ("macro", "weighted"))
    y, s, w = _multiclass_inputs(y_true_idx, y_score, sample_weight)
    k = s.shape[1]
    class_weight = np.bincount(y, weights=w, minlength=k)
    _raise_absent(class_weight, names, "one-vs-one ROC AUC")
    if w is not None and not (w > 0).all():
        keep = w > 0
        y, s, w = y[keep], s[keep], w[keep]
    auc = np.zeros((k, k))
    for a in range(k):
        column = s[:, a]
        order = np.argsort(np.negative(column), kind="stable")
        s_desc, y_desc = column[order], y[order]
        w_desc = None if w is None else w[order]
        is_a = y_desc == a
        for b in range(k):
            if b != a:
                rows = is_a | (y_desc == b)
                sub_w = None if w_desc is None else w_desc[rows]
                auc[a, b] = roc_auc(_from_descending(s_desc[rows], is_a[rows], sub_w))
    upper = np.triu_indices(k, 1)
    pair_scores = (auc[upper] + auc.T[upper]) / 2
    if average == "macro":
        return float(np.mean(pair_scores))
    prevalence = (class_weight[upper[0]] + class_weight[upper[1]]) / class_weight.sum()
    return float(np.average(pair_scores, weights=prevalence))


def _multilabel_inputs(
    y_true: ArrayLike, y_score: ArrayLike, sample_weight: ArrayLike | None
) -> tuple[NDArray[np.bool_], NDArray[np.floating[Any]], Float | None]:
    y = np.asarray(y_true)
    s = np.asarray(y_score)
    if s.dtype.kind != "f":
        s = s.astype(np.float64)
    if s.ndim != 2 or y.shape != s.shape or s.shape[0] == 0:
        raise InvalidInput(
            f"y_true and y_score must both be (n, L) with n >= 1, got {y.shape} and {s.shape}",
            field="y_score",
        )
    if y.dtype != np.bool_:
        if y.dtype.kind not in "iuf" or not np.isin(y, (0, 1)).all():
            raise InvalidInput("must be a 0/1 indicator matrix", field="y_true")
        y = y != 0
    return y, s, _weights(sample_weight, s.shape[0])


def _multilabel(
    metric: Literal["roc", "ap"],
    y_true: ArrayLike,
    y_score: ArrayLike,
    sample_weight: ArrayLike | None,
    average: MultilabelAverage,
    names: Sequence[Any] | None,
) -> float | Float:
    _check_average(average, ("macro", "micro", "weighted", "samples", None))
    y, s, w = _multilabel_inputs(y_true, y_score, sample_weight)
    binary = roc_auc if metric == "roc" else average_precision
    title = "ROC AUC" if metric == "roc" else "average precision"
    if average == "micro":
        cells_w = None if w is None else np.repeat(w, y.shape[1])
        return binary(rank_binary(y.ravel(), s.ravel(), cells_w))
    if average == "samples":
        return _samples_average(metric, title, y, s, w)
    pos_w = y.sum(axis=0) if w is None else w @ y
    neg_w = (~y).sum(axis=0) if w is None else w @ ~y
    undefined = pos_w <= 0
    if metric == "roc":
        undefined |= neg_w <= 0
    columns = np.arange(y.shape[1])
    if average == "weighted":
        if not (pos_w > 0).any():
            raise UndefinedMetricError(
                f"weighted {title} is undefined: no label has a positive sample"
            )
        columns = np.flatnonzero(pos_w > 0)  # zero-support labels weigh 0 (as sklearn)
        undefined &= pos_w > 0
    if undefined.any():
        bad = np.flatnonzero(undefined)
        raise UndefinedMetricError(
            f"{title} is undefined for {_describe('label', bad, names)}: "
            f"{'it has' if bad.size == 1 else 'each has'} only one class in y_true"
            f"{' (with non-zero weight)' if w is not None else ''}"
        )
    scores = np.array([binary(rank_binary(y[:, j], s[:, j], w)) for j in columns])
    if average is None:
        return scores
    return float(np.average(scores, weights=pos_w[columns] if average == "weighted" else None))


def _samples_average(
    metric: Literal["roc", "ap"],
    title: str,
    y: NDArray[np.bool_],
    s: NDArray[np.floating[Any]],
    w: Float | None,
) -> float:
    """Mean over rows (weighted by ``w``) of the metric across each row's labels.

    Rows are ranked all at once by ``scipy.stats.rankdata`` along axis 1 (rank-based formulas
    equal to the per-row curves); zero-weight rows are skipped, as sklearn does.
    """
    if w is not None:
        rows = np.flatnonzero(w > 0)
        y, s, w = y[rows], s[rows], w[rows]
    else:
        rows = np.arange(y.shape[0])
    n_labels = y.shape[1]
    n_pos = y.sum(axis=1)
    n_neg = n_labels - n_pos
    undefined = (n_pos == 0) | (n_neg == 0) if metric == "roc" else n_pos == 0
    if undefined.any():
        bad = rows[undefined]
        what = "only one class" if metric == "roc" else "no positive label"
        raise UndefinedMetricError(
            f"samples-average {title} is undefined: {_describe('row', bad, None)} "
            f"{'has' if bad.size == 1 else 'have'} {what}"
        )
    if metric == "roc":
        # Mann–Whitney: (sum of the positives' mid-ranks - P(P+1)/2) / (P N), ties count 1/2.
        rank_sum = np.where(y, rankdata(s, method="average", axis=1), 0.0).sum(axis=1)
        values = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    else:
        # Each positive adds precision at its tie group's end: (#pos >= s) / (#rows >= s).
        at_or_above = n_labels + 1 - rankdata(s, method="min", axis=1)
        masked = np.where(y, s, -np.inf)  # negatives sink below every positive
        pos_at_or_above = n_labels + 1 - rankdata(masked, method="min", axis=1)
        values = np.where(y, pos_at_or_above / at_or_above, 0.0).sum(axis=1) / n_pos
    return float(np.average(values, weights=w))


@overload
def roc_auc_multilabel(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    sample_weight: ArrayLike | None = ...,
    average: Literal["macro", "micro", "weighted", "samples"] = ...,
    names: Sequence[Any] | None = ...,
) -> float: ...
@overload
def roc_auc_multilabel(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    sample_weight: ArrayLike | None = ...,
    average: None,
    names: Sequence[Any] | None = ...,
) -> Float: ...
def roc_auc_multilabel(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    average: MultilabelAverage = "macro",
    names: Sequence[Any] | None = None,
) -> float | Float:
    """Multilabel ROC-AUC, ``roc_auc_score`` on a multilabel-indicator ``y_true``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples, L)
        0/1 or bool indicators.
    y_score : array-like of shape (n_samples, L)
    sample_weight : array-like of shape (n_samples,), optional
    average : {"macro", "micro", "weighted", "samples", None}, default "macro"
        ``"macro"``: mean of the per-label AUCs; ``"weighted"``: weighted by each label's
        positive weight (labels without positives weigh 0 and are skipped, as sklearn);
        ``"micro"``: the ``n·L`` cells ranked as one binary problem; ``"samples"``: the AUC of
        each row across its labels, averaged with ``sample_weight``; ``None``: per label.
    names : sequence, optional
        Label names for error messages.

    Raises
    ------
    UndefinedMetricError
        A label (macro, None, weighted with positives) or a row (samples) with one class only,
        or micro with one class overall; the reason names them. sklearn returns NaN there
        (with a warning), and "macro over the defined labels" is not what it computes either.

    Examples
    --------
    >>> y = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [0, 1]])
    >>> p = np.array([[.9, .2], [.3, .6], [.4, .3], [.2, .1], [.5, .1]])
    >>> roc_auc_multilabel(y, p), roc_auc_multilabel(y, p, average=None)
    (0.7916666666666667, array([0.83333333, 0.75      ]))
    """
    return _multilabel("roc", y_true, y_score, sample_weight, average, names)


@overload
def average_precision_multilabel(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    sample_weight: ArrayLike | None = ...,
    average: Literal["macro", "micro", "weighted", "samples"] = ...,
    names: Sequence[Any] | None = ...,
) -> float: ...
@overload
def average_precision_multilabel(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    sample_weight: ArrayLike | None = ...,
    average: None,
    names: Sequence[Any] | None = ...,
) -> Float: ...
def average_precision_multilabel(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    average: MultilabelAverage = "macro",
    names: Sequence[Any] | None = None,
) -> float | Float:
    """Multilabel average precision, ``average_precision_score`` on indicator ``y_true``.

    Parameters and averages as :func:`roc_auc_multilabel`; AP needs positives only.

    Raises
    ------
    UndefinedMetricError
        A label without positives (macro, None), a row without positive labels (samples), no
        positive anywhere (micro, weighted). sklearn 1.9 scores such a label or row 0 with a
        warning, which drags the average down for no reason; "weighted" skips zero-support
        labels in both.

    Examples
    --------
    >>> y = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [0, 1]])
    >>> p = np.array([[.9, .2], [.3, .6], [.4, .3], [.2, .1], [.5, .1]])
    >>> average_precision_multilabel(y, p, average=None)
    array([0.83333333, 0.86666667])
    """
    return _multilabel("ap", y_true, y_score, sample_weight, average, names)
