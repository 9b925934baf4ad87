"""Margin losses on decision values (SVM-style scores): hinge and squared hinge.

Binary: ``y_pred`` is ``(n_samples,)`` and the margin is ``y * f`` with ``y`` in {-1, +1}.
Multiclass (Crammer-Singer): ``y_pred`` is ``(n_samples, n_classes)`` and the margin is
``f_{y} - max_{k != y} f_k``. One loss per sample.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from app.core._checks import as_float_array, check_consistent_length
from app.core.losses._base import (
    Float64Array,
    LossValue,
    Reduction,
    check_reduction,
    class_indices,
    reduce_loss,
    sample_weights,
    to_float64,
)
from app.errors import InvalidInput


def _binary_signs(y_true: ArrayLike, n: int) -> Float64Array:
    """Map labels in {0, 1} or {-1, 1} to -1/+1 (the larger label is positive)."""
    y = to_float64(as_float_array(y_true, "y_true", ndim=1))
    check_consistent_length(n, y_true=y)
    values = set(np.unique(y).tolist())
    if not (values <= {0.0, 1.0} or values <= {-1.0, 1.0}):
        raise InvalidInput(
            f"has labels {sorted(values)[:5]}: binary labels must be 0/1 or -1/+1 "
            "(send (n_samples, n_classes) decision values for multiclass)",
            field="y_true",
        )
    return np.where(y > 0, 1.0, -1.0)


def _margins(y_true: ArrayLike, y_pred: ArrayLike) -> Float64Array:
    f = to_float64(as_float_array(y_pred, "y_pred", ndim=(1, 2)))
    if f.ndim == 1:
        with np.errstate(over="ignore"):
            return _binary_signs(y_true, f.shape[0]) * f
    n, k = f.shape
    if k < 2:
        raise InvalidInput(
            f"has {k} column: multiclass decision values need >= 2 classes", field="y_pred"
        )
    y = class_indices(y_true, n, k)
    rows = np.arange(n)
    rivals = f.copy()
    rivals[rows, y] = -np.inf
    with np.errstate(over="ignore"):
        return f[rows, y] - rivals.max(axis=1)


def hinge(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> LossValue:
    """Hinge loss ``max(0, 1 - margin)``; the mean is ``sklearn.metrics.hinge_loss``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Binary labels in {0, 1} or {-1, 1} for 1-D ``y_pred``; class indices (column numbers)
        for 2-D ``y_pred``.
    y_pred : array-like of shape (n_samples,) or (n_samples, n_classes)
        Decision values: the signed score of the positive class, or one score per class.
    sample_weight : array-like of shape (n_samples,), optional
    reduction : {"mean", "sum", "none"}
        ``"none"`` gives one loss per sample.

    Notes
    -----
    Unlike scikit-learn, the label encoding is fixed rather than inferred, so a batch holding only
    one class is still well defined (all 1: positive; all 0 or -1: negative).

    Examples
    --------
    >>> hinge([1, 0, 1], [2.0, -0.5, 0.3], reduction="none")
    array([0. , 0.5, 0.7])
    >>> hinge([0, 2], [[1.0, 0.5, -1.0], [0.0, 2.0, 1.5]], reduction="none")
    array([0.5, 1.5])
    """
    red = check_reduction(reduction)
    m = _margins(y_true, y_pred)
    w = sample_weights(sample_weight, m.shape[0])
    with np.errstate(over="ignore"):
        return reduce_loss(np.maximum(0.0, 1.0 - m), w, red)


def squared_hinge(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> LossValue:
    """Squared hinge loss ``max(0, 1 - margin)**2`` (the L2-SVM loss); see :func:`hinge`.

    For 2-D input the margin is the Crammer-Singer one, as in :func:`hinge`.

    Examples
    --------
    >>> squared_hinge([1, -1], [0.5, 0.5], reduction="none")
    array([0.25, 2.25])
    """
    red = check_reduction(reduction)
    m = _margins(y_true, y_pred)
    w = sample_weights(sample_weight, m.shape[0])
    with np.errstate(over="ignore"):
        return reduce_loss(np.square(np.maximum(0.0, 1.0 - m)), w, red)
