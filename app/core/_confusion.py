"""Count builders: the one O(n) pass that every confusion-based metric is computed from.

A group slice or a bootstrap resample builds its own counts here and hands them to the metric
functions of :mod:`app.core.classification`, which only ever read counts.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.errors import InvalidInput

__all__ = [
    "binary_confusion_from_counts",
    "confusion_matrix",
    "multilabel_confusion",
    "normalize_confusion",
]

Normalize = Literal["true", "pred", "all"]


def confusion_matrix(
    y_true_idx: NDArray[np.intp],
    y_pred_idx: NDArray[np.intp],
    n_classes: int,
    sample_weight: NDArray[np.float64] | None = None,
) -> NDArray[Any]:
    """Multiclass confusion matrix from class indices, in a single ``np.bincount``.

    Parameters
    ----------
    y_true_idx, y_pred_idx : ndarray of shape (n_samples,)
        Class indices in ``[0, n_classes)`` (validated by the caller).
    n_classes : int
        K, the number of classes; classes absent from both arrays get empty rows and columns.
    sample_weight : ndarray of shape (n_samples,), optional

    Returns
    -------
    cm : ndarray of shape (n_classes, n_classes)
        ``cm[i, j]`` = (weighted) number of samples of true class ``i`` predicted as ``j``.
        int64 without weights, float64 with. Equals
        ``sklearn.metrics.confusion_matrix(..., labels=range(n_classes))``.

    Examples
    --------
    >>> confusion_matrix(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 1]), 3)
    array([[1, 0, 0],
           [0, 0, 1],
           [0, 1, 1]])
    """
    k = int(n_classes)
    flat = y_true_idx.astype(np.intp, copy=False) * k + y_pred_idx
    counts = np.bincount(flat, weights=sample_weight, minlength=k * k)
    if sample_weight is None:
        counts = counts.astype(np.int64, copy=False)
    return counts.reshape(k, k)


def normalize_confusion(cm: NDArray[Any], normalize: Normalize) -> NDArray[np.float64]:
    """Normalize a confusion matrix (or a stack of them) like sklearn, but keep 0/0 as NaN.

    Parameters
    ----------
    cm : ndarray of shape (K, K) or (L, 2, 2)
        Rows are true classes, columns predicted classes (the last two axes).
    normalize : {"true", "pred", "all"}
        Divide by row sums (recall-like), column sums (precision-like) or the grand total.

    Returns
    -------
    ndarray of the same shape, float64
        A row (``"true"``), column (``"pred"``) or matrix (``"all"``) with zero total is NaN,
        where sklearn returns 0: the class has no sample, so the caller reports ``null``.

    Examples
    --------
    >>> normalize_confusion(np.array([[2, 2], [0, 0]]), "true")
    array([[0.5, 0.5],
           [nan, nan]])
    """
    if normalize == "true":
        axis: int | tuple[int, int] = -1
    elif normalize == "pred":
        axis = -2
    elif normalize == "all":
        axis = (-2, -1)
    else:
        raise InvalidInput(
            f"is {normalize!r}; expected one of 'true', 'pred', 'all'", field="normalize"
        )
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum(axis=axis, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = cm / total
    out[np.broadcast_to(total == 0, out.shape)] = np.nan
    return out


def multilabel_confusion(
    y_true: NDArray[Any],
    y_pred: NDArray[Any],
    sample_weight: NDArray[np.float64] | None = None,
    *,
    samplewise: bool = False,
) -> NDArray[Any]:
    """One 2x2 confusion matrix per label (or per sample) of a multilabel indicator problem.

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (n_samples, n_labels)
        0/1 (or boolean) indicator matrices.
    sample_weight : ndarray of shape (n_samples,), optional
    samplewise : bool, default False
        Return one matrix per sample (over its labels) instead of one per label; needed for
        ``average="samples"``.

    Returns
    -------
    ndarray of shape (n_labels, 2, 2), or (n_samples, 2, 2) if ``samplewise``
        Each matrix is ``[[tn, fp], [fn, tp]]``; int64 without weights, float64 with (a sample's
        own counts are scaled by its weight when ``samplewise``). Equals
        ``sklearn.metrics.multilabel_confusion_matrix``.

    Examples
    --------
    >>> multilabel_confusion(np.array([[1, 0], [1, 1]]), np.array([[1, 1], [0, 1]]))
    array([[[0, 0],
            [1, 1]],
    <BLANKLINE>
           [[0, 1],
            [0, 1]]])
    """
    t = np.asarray(y_true) != 0
    p = np.asarray(y_pred) != 0
    axis = 1 if samplewise else 0
    n_other = t.shape[axis]
    if sample_weight is None:
        tp = np.count_nonzero(t & p, axis=axis).astype(np.int64)
        pred = np.count_nonzero(p, axis=axis).astype(np.int64)
        true = np.count_nonzero(t, axis=axis).astype(np.int64)
        total: Any = n_other
    elif samplewise:
        w = sample_weight
        tp = np.count_nonzero(t & p, axis=1) * w
        pred = np.count_nonzero(p, axis=1) * w
        true = np.count_nonzero(t, axis=1) * w
        total = w * n_other
    else:
        w = sample_weight
        tp = w @ (t & p)
        pred = w @ p
        true = w @ t
        total = w.sum()
    fp = pred - tp
    fn = true - tp
    tn = total - tp - fp - fn
    return np.stack([tn, fp, fn, tp], axis=-1).reshape(-1, 2, 2)


def binary_confusion_from_counts(
    tp: ArrayLike, fp: ArrayLike, tn: ArrayLike, fn: ArrayLike
) -> NDArray[Any]:
    """Assemble ``[[tn, fp], [fn, tp]]`` from counts (e.g. read off a sorted score column).

    The result is exactly the 2x2 multiclass confusion matrix with class 0 = negative and
    class 1 = positive, so every metric takes it with ``average="binary", pos_label=1``.

    Parameters
    ----------
    tp, fp, tn, fn : scalar or array-like of a common shape S
        Counts or weight sums; integers give int64, anything else float64.

    Returns
    -------
    ndarray of shape S + (2, 2)
        A single matrix for scalar counts; a stack (e.g. one per threshold) for arrays.

    Examples
    --------
    >>> binary_confusion_from_counts(tp=3, fp=1, tn=5, fn=2)
    array([[5, 1],
           [2, 3]])
    """
    parts = np.broadcast_arrays(*(np.asarray(v) for v in (tn, fp, fn, tp)))
    integer = all(a.dtype.kind in "iub" for a in parts)
    stacked = np.stack(parts, axis=-1).astype(np.int64 if integer else np.float64)
    return stacked.reshape(*parts[0].shape, 2, 2)
