"""Threshold recommendations from raw arrays: one binary column, per group, per class or label.

Inputs are validated once here; each binary column (or group slice) is then ranked once by
:func:`~app.core.curves.rank_binary` and searched by :func:`recommend_from_ranking`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.core._checks import (
    as_float_array,
    check_consistent_length,
    check_sample_weight,
    encode_labels,
)
from app.core.curves import rank_binary
from app.core.thresholds._objectives import ThresholdObjective, as_objective
from app.core.thresholds._search import ThresholdRecommendation, check_n_neighbors, search
from app.errors import InvalidInput

__all__ = ["recommend_by_group", "recommend_per_class", "recommend_threshold"]


def _binary_labels(y_true: ArrayLike, field: str = "y_true") -> NDArray[np.bool_]:
    y = np.asarray(y_true)
    if y.size == 0:
        raise InvalidInput("is empty: the batch needs at least one row", field=field)
    if y.dtype == np.bool_:
        return y
    if y.dtype.kind not in "iuf" or not np.isin(y, (0, 1)).all():
        raise InvalidInput("must hold 0/1 (or bool) labels; True or 1 is positive", field=field)
    return y != 0


def _binary_inputs(
    y_true: ArrayLike, y_score: ArrayLike, sample_weight: ArrayLike | None
) -> tuple[NDArray[np.bool_], NDArray[np.floating[Any]], NDArray[np.float64] | None]:
    s = as_float_array(y_score, "y_score", ndim=1)
    y = _binary_labels(y_true)
    if y.ndim != 1:
        raise InvalidInput(f"must be 1-D, got shape {y.shape}", field="y_true")
    check_consistent_length(y.shape[0], y_score=s)
    return y, s, check_sample_weight(sample_weight, y.shape[0])


def recommend_threshold(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    objective: str | ThresholdObjective = "f1",
    n_neighbors: int = 5,
    **params: float | None,
) -> ThresholdRecommendation:
    """The best decision threshold of a binary score column: validate, rank once, search.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0/1 or bool; 1 (True) is the positive class.
    y_score : array-like of shape (n_samples,)
        Finite scores, higher meaning more positive (probabilities or logits alike).
    sample_weight : array-like of shape (n_samples,), optional
        Non-negative, not all zero; zero-weight rows take no part.
    objective, n_neighbors, **params
        As :func:`recommend_from_ranking`, which documents candidates, ties and infeasibility.

    Returns
    -------
    ThresholdRecommendation

    Raises
    ------
    InvalidInput
        Bad arrays (field ``y_true``, ``y_score`` or ``sample_weight``), an unknown objective
        (``objective``) or a bad parameter (its name).

    Examples
    --------
    >>> y = [0, 0, 1, 1, 0, 1, 1, 0]
    >>> s = [0.1, 0.4, 0.35, 0.8, 0.45, 0.6, 0.9, 0.2]
    >>> rec = recommend_threshold(y, s, objective="cost", cost_fp=1, cost_fn=3)
    >>> rec.threshold, rec.value, rec.point.fp, rec.point.fn
    (0.35, 0.25, 2, 0)
    >>> rec = recommend_threshold(y, s, objective="recall_at_ppr", max_ppr=0.25)
    >>> rec.threshold, rec.point.predicted_positive_rate, rec.point.recall
    (0.8, 0.25, 0.5)
    """
    obj = as_objective(objective, params)
    k = check_n_neighbors(n_neighbors)
    y, s, w = _binary_inputs(y_true, y_score, sample_weight)
    return search(rank_binary(y, s, w), obj, k)


def recommend_by_group(
    y_true: ArrayLike,
    y_score: ArrayLike,
    groups: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    objective: str | ThresholdObjective = "f1",
    n_neighbors: int = 5,
    **params: float | None,
) -> dict[Any, ThresholdRecommendation]:
    """One threshold per group: each group's rows ranked once and searched on their own.

    Parameters
    ----------
    y_true, y_score, sample_weight, objective, n_neighbors, **params
        As :func:`recommend_threshold`.
    groups : array-like of shape (n_samples,)
        Group of each row: strings or integers (not mixed).

    Returns
    -------
    dict
        Group value (``str`` or ``int``) -> :class:`ThresholdRecommendation`, in sorted group
        order. A group on which the objective is undefined (one class only, for the objectives
        that need both) or whose rows all weigh 0 gets ``feasible=False``, ``point=None`` and a
        ``reason``; it does not fail the request.

    Notes
    -----
    Rows are ordered by group with one stable argsort of the group codes, then each group's
    contiguous slice is ranked: one sort per group and no full-batch score sort.

    Examples
    --------
    >>> y = [1, 0, 1, 0, 0, 0]
    >>> s = [0.9, 0.3, 0.6, 0.5, 0.7, 0.2]
    >>> out = recommend_by_group(y, s, ["a", "a", "b", "b", "c", "c"])
    >>> {g: rec.threshold for g, rec in out.items()}
    {'a': 0.9, 'b': 0.6, 'c': None}
    >>> out["c"].reason
    'F1 is undefined: y_true has no positive samples'
    """
    obj = as_objective(objective, params)
    k = check_n_neighbors(n_neighbors)
    y, s, w = _binary_inputs(y_true, y_score, sample_weight)
    keys, codes = encode_labels(groups, field="groups")
    check_consistent_length(y.shape[0], groups=codes)
    order = np.argsort(codes, kind="stable")
    ends = np.cumsum(np.bincount(codes, minlength=keys.shape[0]))
    y, s = y[order], s[order]
    w = None if w is None else w[order]
    out: dict[Any, ThresholdRecommendation] = {}
    start = 0
    for key, end in zip(keys.tolist(), ends.tolist(), strict=True):
        rows = slice(start, end)
        start = end
        gw = None if w is None else w[rows]
        if gw is not None and not gw.any():
            out[key] = ThresholdRecommendation(
                obj, False, None, (), None, "every row of the group has zero weight", 0
            )
            continue
        out[key] = search(rank_binary(y[rows], s[rows], gw), obj, k)
    return out


def recommend_per_class(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    objective: str | ThresholdObjective = "f1",
    n_neighbors: int = 5,
    **params: float | None,
) -> list[ThresholdRecommendation]:
    """One threshold per column of a score matrix: multiclass one-vs-rest, or multilabel.

    Column ``c`` is the binary problem "class (label) ``c`` vs the rest" on the scores
    ``y_score[:, c]``: predict ``c`` iff ``y_score[:, c] >= threshold_c``. For multiclass data
    these are per-class decision rules, not an argmax.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,) or (n_samples, K)
        Class indices in ``[0, K)`` (multiclass), or a 0/1 (bool) indicator matrix
        (multilabel).
    y_score : array-like of shape (n_samples, K)
    sample_weight, objective, n_neighbors, **params
        As :func:`recommend_threshold`.

    Returns
    -------
    list of ThresholdRecommendation
        One per column, in column order. A column without positives (or negatives, where the
        objective needs them) is reported undefined with a reason, not raised.

    Examples
    --------
    >>> p = np.array([[.7, .2, .1], [.2, .5, .3], [.1, .3, .6], [.4, .4, .2]])
    >>> [rec.threshold for rec in recommend_per_class([0, 1, 2, 1], p, objective="youden")]
    [0.7, 0.4, 0.6]
    """
    obj = as_objective(objective, params)
    k = check_n_neighbors(n_neighbors)
    s = as_float_array(y_score, "y_score", ndim=2)
    n, n_cols = s.shape
    y = np.asarray(y_true)
    check_consistent_length(y.shape[0] if y.ndim else 0, y_score=s)
    if y.ndim == 1:
        if y.dtype.kind not in "iu" or (y < 0).any() or (y >= n_cols).any():
            raise InvalidInput(f"must hold class indices in [0, {n_cols})", field="y_true")
        columns = [y == c for c in range(n_cols)]
    elif y.shape == s.shape:
        indicator = _binary_labels(y)
        columns = [indicator[:, c] for c in range(n_cols)]
    else:
        raise InvalidInput(
            f"must be class indices of shape ({n},) or an indicator matrix of shape {s.shape}, "
            f"got {y.shape}",
            field="y_true",
        )
    w = check_sample_weight(sample_weight, n)
    return [search(rank_binary(columns[c], s[:, c], w), obj, k) for c in range(n_cols)]
