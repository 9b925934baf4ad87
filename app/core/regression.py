"""Regression metrics, equal to scikit-learn's on float64 input.

Every function takes ``y_true`` and ``y_pred`` of shape (n_samples,) or (n_samples, n_outputs)
and an optional ``sample_weight`` of shape (n_samples,); multioutput scores are the uniform
average of the per-output scores (sklearn's ``multioutput="uniform_average"``). Arithmetic is in
float64.

Undefined values
----------------
The service reports an undefined metric as ``null`` plus a warning, never as a silent 0, NaN or
-inf, so where sklearn returns one of those the functions here raise
:class:`app.errors.UndefinedMetricError` with the reason:

- :func:`r2` and :func:`explained_variance` when ``y_true`` is constant (over the rows with
  non-zero weight) and the predictions are not perfect: the denominator is 0. sklearn returns
  0.0 (``force_finite=True``) or -inf (``force_finite=False``). Perfect predictions score 1.0,
  as in sklearn. Constancy is tested exactly (all values equal) rather than by the computed
  variance, which rounding can leave a hair above 0: sklearn then returns a huge negative
  score for ``y_true = [0.1] * 10``, and 0.0 instead of 1.0 for the explained variance of
  ``y_true = [0, 0, 0]``, ``y_pred = [0.1, 0.1, 0.1]`` (a constant residual).
- :func:`r2` with fewer than two samples (sklearn: NaN and a warning).

:func:`mean_absolute_percentage_error` is never undefined: like sklearn it divides by
``max(|y_true|, eps)`` with ``eps = np.finfo(np.float64).eps``, so a zero target with a wrong
prediction gives a huge but finite value (~4.5e15 per unit of error), which is reported as is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from app.errors import InvalidInput, UndefinedMetricError

__all__ = [
    "explained_variance",
    "max_error",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_pinball_loss",
    "mean_squared_error",
    "mean_squared_log_error",
    "median_absolute_error",
    "r2",
    "root_mean_squared_error",
    "root_mean_squared_log_error",
]

Float = NDArray[np.float64]


def _as_2d(y_true: NDArray[Any], y_pred: NDArray[Any]) -> tuple[Float, Float]:
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    t = t.reshape(t.shape[0], -1)
    p = p.reshape(p.shape[0], -1)
    if t.shape != p.shape:
        raise InvalidInput(f"has shape {p.shape} but y_true has shape {t.shape}", field="y_pred")
    return t, p


def _per_output_mean(values: Float, sample_weight: Float | None) -> Float:
    """Weighted mean over samples, one value per output (sklearn's ``_average(axis=0)``)."""
    return np.average(values, axis=0, weights=sample_weight)


def mean_squared_error(
    y_true: Float, y_pred: Float, *, sample_weight: Float | None = None
) -> float:
    """Mean squared error ``Σ w (y − ŷ)² / Σ w``.

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (n_samples,) or (n_samples, n_outputs)
    sample_weight : ndarray of shape (n_samples,), optional

    Returns
    -------
    float
        Equals ``sklearn.metrics.mean_squared_error``.

    Examples
    --------
    >>> mean_squared_error(np.array([3, -0.5, 2, 7]), np.array([2.5, 0.0, 2, 8]))
    0.375
    """
    t, p = _as_2d(y_true, y_pred)
    return float(np.mean(_per_output_mean((t - p) ** 2, sample_weight)))


def root_mean_squared_error(
    y_true: Float, y_pred: Float, *, sample_weight: Float | None = None
) -> float:
    """Root mean squared error: the square root per output, then the mean over outputs.

    Examples
    --------
    >>> root_mean_squared_error(np.array([3, -0.5, 2, 7]), np.array([2.5, 0.0, 2, 8]))
    0.6124
    """
    t, p = _as_2d(y_true, y_pred)
    return float(np.mean(np.sqrt(_per_output_mean((t - p) ** 2, sample_weight))))


def _check_log_domain(t: Float, p: Float) -> None:
    for field, arr in (("y_true", t), ("y_pred", p)):
        bad = arr <= -1
        if bad.any():
            i = int(np.argmax(bad.any(axis=1)))
            raise InvalidInput(
                f"row {i} holds {float(arr[bad][0])!r}: squared log error needs values > -1 "
                "(it compares log(1 + y))",
                field=field,
            )


def mean_squared_log_error(
    y_true: Float, y_pred: Float, *, sample_weight: Float | None = None
) -> float:
    """Mean squared logarithmic error ``Σ w (log1p(y) − log1p(ŷ))² / Σ w``.

    Raises
    ------
    InvalidInput
        A value <= -1 in ``y_true`` or ``y_pred`` (sklearn 1.9 raises for the same values).

    Examples
    --------
    >>> mean_squared_log_error(np.array([3, 5, 2.5, 7]), np.array([2.5, 5, 4, 8]))
    0.0397
    """
    t, p = _as_2d(y_true, y_pred)
    _check_log_domain(t, p)
    return mean_squared_error(np.log1p(t), np.log1p(p), sample_weight=sample_weight)


def root_mean_squared_log_error(
    y_true: Float, y_pred: Float, *, sample_weight: Float | None = None
) -> float:
    """Root mean squared logarithmic error (per output, then averaged).

    Examples
    --------
    >>> root_mean_squared_log_error(np.array([3, 5, 2.5, 7]), np.array([2.5, 5, 4, 8]))
    0.1993
    """
    t, p = _as_2d(y_true, y_pred)
    _check_log_domain(t, p)
    return root_mean_squared_error(np.log1p(t), np.log1p(p), sample_weight=sample_weight)


def mean_absolute_error(
    y_true: Float, y_pred: Float, *, sample_weight: Float | None = None
) -> float:
    """Mean absolute error ``Σ w |y − ŷ| / Σ w``.

    Examples
    --------
    >>> mean_absolute_error(np.array([3, -0.5, 2, 7]), np.array([2.5, 0.0, 2, 8]))
    0.5
    """
    t, p = _as_2d(y_true, y_pred)
    return float(np.mean(_per_output_mean(np.abs(t - p), sample_weight)))


def mean_absolute_percentage_error(
    y_true: Float, y_pred: Float, *, sample_weight: Float | None = None
) -> float:
    """Mean absolute percentage error ``Σ w |y − ŷ| / max(|y|, eps) / Σ w``, as a fraction.

    ``eps = np.finfo(np.float64).eps`` as in sklearn, so ``y_true = 0`` gives a huge finite
    value, not an error. The result is a fraction (0.1 means 10 %).

    Examples
    --------
    >>> mean_absolute_percentage_error(np.array([3, -0.5, 2, 7]), np.array([2.5, 0.0, 2, 8]))
    0.3274
    >>> mean_absolute_percentage_error(np.array([1.0, 0.0]), np.array([1.0, 0.1]))
    225179981368524.8
    """
    t, p = _as_2d(y_true, y_pred)
    ape = np.abs(p - t) / np.maximum(np.abs(t), np.finfo(np.float64).eps)
    return float(np.mean(_per_output_mean(ape, sample_weight)))


def _weighted_median(values: Float, weights: Float) -> float:
    """sklearn's ``_weighted_percentile(..., 50, average=True)`` on one column.

    The "averaged inverted CDF": sort, find the first value whose cumulative weight reaches half
    the total; if it reaches it exactly (within eps), average it with the next value of
    positive weight. Equals ``np.median`` for unit weights.
    """
    order = np.argsort(values, kind="stable")
    v = values[order]
    w = weights[order]
    cdf = np.cumsum(w)
    target = 0.5 * cdf[-1]
    last = v.shape[0] - 1
    i = min(int(np.searchsorted(cdf, target)), last)
    if cdf[i] - target > np.finfo(np.float64).eps:
        return float(v[i])
    j = min(i + 1, last)
    if w[j] == 0:
        nxt = int(np.searchsorted(cdf, cdf[i], side="right"))
        j = i if nxt > last else nxt
    return float((v[i] + v[j]) / 2)


def median_absolute_error(
    y_true: Float, y_pred: Float, *, sample_weight: Float | None = None
) -> float:
    """Median of ``|y − ŷ|``, weighted as sklearn 1.9 (averaged inverted CDF).

    Without weights ``np.median``; with weights, :func:`_weighted_median` per output, which
    ignores zero-weight rows and equals ``np.median`` for equal weights.

    Examples
    --------
    >>> median_absolute_error(np.array([3, -0.5, 2, 7]), np.array([2.5, 0.0, 2, 8]))
    0.5
    >>> median_absolute_error(np.array([0.0, 0, 0]), np.array([1.0, 2, 9]),
    ...                       sample_weight=np.array([1.0, 1, 0]))
    1.5
    """
    t, p = _as_2d(y_true, y_pred)
    err = np.abs(p - t)
    if sample_weight is None:
        per_output = np.median(err, axis=0)
    else:
        per_output = np.array([_weighted_median(col, sample_weight) for col in err.T])
    return float(np.mean(per_output))


def max_error(y_true: Float, y_pred: Float, *, sample_weight: Float | None = None) -> float:
    """Largest absolute residual ``max |y − ŷ|``.

    sklearn's ``max_error`` takes neither weights nor several outputs. Here a row of weight 0
    is ignored (it is not part of the evaluated data) and other weights do not matter; with
    several outputs the per-output maxima are averaged, like every other metric here.

    Examples
    --------
    >>> max_error(np.array([3, 2, 7, 1]), np.array([4, 2, 7, 1]))
    1.0
    >>> max_error(np.array([3.0, 2]), np.array([4.0, 9]), sample_weight=np.array([1.0, 0]))
    1.0
    """
    t, p = _as_2d(y_true, y_pred)
    err = np.abs(t - p)
    if sample_weight is not None:
        err = err[sample_weight > 0]
    return float(np.mean(np.max(err, axis=0)))


def mean_pinball_loss(
    y_true: Float, y_pred: Float, *, sample_weight: Float | None = None, alpha: float = 0.5
) -> float:
    """Pinball (quantile) loss ``Σ w ρ_α(y − ŷ) / Σ w``, ``ρ_α(d) = max(α d, (α − 1) d)``.

    ``alpha = 0.5`` is half the mean absolute error. Equals ``sklearn.metrics.mean_pinball_loss``.

    Examples
    --------
    >>> mean_pinball_loss(np.array([1.0, 2, 3]), np.array([0.0, 2, 3]), alpha=0.9)
    0.3
    """
    a = float(alpha)
    if not 0 <= a <= 1:
        raise InvalidInput(f"is {alpha!r}; must lie in [0, 1]", field="alpha")
    t, p = _as_2d(y_true, y_pred)
    diff = t - p
    sign = (diff >= 0).astype(np.float64)
    loss = a * sign * diff - (1 - a) * (1 - sign) * diff
    return float(np.mean(_per_output_mean(loss, sample_weight)))


def _is_constant(values: Float, sample_weight: Float | None) -> NDArray[np.bool_]:
    """Per output: are all values (of the rows with non-zero weight) exactly equal?"""
    if sample_weight is not None:
        values = values[sample_weight > 0]
    return np.all(values == values[:1], axis=0)


def _explained_fraction(
    name: str,
    numerator: Float,
    denominator: Float,
    constant: NDArray[np.bool_],
    perfect: NDArray[np.bool_],
) -> float:
    """``1 − num / den`` per output, then the mean; the constant-``y_true`` policy."""
    denominator = np.where(constant, 0.0, denominator)
    numerator = np.where(perfect, 0.0, numerator)
    undefined = constant & ~perfect
    if undefined.any():
        j = int(np.argmax(undefined))
        where = f" (output {j})" if numerator.shape[0] > 1 else ""
        raise UndefinedMetricError(
            f"{name} is undefined: y_true is constant{where} and the predictions are not "
            "perfect, so there is no variance to explain"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(denominator == 0, 1.0, 1 - numerator / denominator)
    return float(np.mean(scores))


def r2(y_true: Float, y_pred: Float, *, sample_weight: Float | None = None) -> float:
    """Coefficient of determination ``1 − Σ w (y − ŷ)² / Σ w (y − ȳ_w)²``.

    Equals ``sklearn.metrics.r2_score`` whenever ``y_true`` varies. Constant ``y_true``: 1.0 for
    perfect predictions (as sklearn), otherwise undefined (see the module docstring).

    Raises
    ------
    UndefinedMetricError
        Fewer than two samples, or constant ``y_true`` with imperfect predictions.

    Examples
    --------
    >>> r2(np.array([3, -0.5, 2, 7]), np.array([2.5, 0.0, 2, 8]))
    0.9486
    >>> r2(np.array([2.0, 2.0]), np.array([2.0, 2.0]))
    1.0
    """
    t, p = _as_2d(y_true, y_pred)
    if t.shape[0] < 2:
        raise UndefinedMetricError("r2 is undefined with fewer than two samples")
    w = 1.0 if sample_weight is None else sample_weight[:, None]
    numerator = np.sum(w * (t - p) ** 2, axis=0)
    mean = np.average(t, axis=0, weights=sample_weight)
    denominator = np.sum(w * (t - mean) ** 2, axis=0)
    constant = _is_constant(t, sample_weight)
    return _explained_fraction("r2", numerator, denominator, constant, numerator == 0)


def explained_variance(
    y_true: Float, y_pred: Float, *, sample_weight: Float | None = None
) -> float:
    """Explained variance ``1 − Var_w(y − ŷ) / Var_w(y)``.

    Equals ``sklearn.metrics.explained_variance_score`` whenever ``y_true`` varies. Constant
    ``y_true``: 1.0 if the residual is constant too (exactly), otherwise undefined.

    Examples
    --------
    >>> explained_variance(np.array([3, -0.5, 2, 7]), np.array([2.5, 0.0, 2, 8]))
    0.9572
    """
    t, p = _as_2d(y_true, y_pred)
    resid = t - p
    resid_mean = _per_output_mean(resid, sample_weight)
    numerator = _per_output_mean((resid - resid_mean) ** 2, sample_weight)
    t_mean = _per_output_mean(t, sample_weight)
    denominator = _per_output_mean((t - t_mean) ** 2, sample_weight)
    constant = _is_constant(t, sample_weight)
    # A constant y_true is perfectly explained by an exactly constant residual.
    perfect = (numerator == 0) | (constant & _is_constant(resid, sample_weight))
    return _explained_fraction("explained_variance", numerator, denominator, constant, perfect)
