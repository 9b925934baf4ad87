"""Shared machinery of the loss functions: reductions, parameter checks, input preparation.

Every public loss validates its inputs with these helpers, computes an unreduced float64 loss
array, and hands it to :func:`reduce_loss`, so the weighting and reduction rules live in one place.
"""

from __future__ import annotations

from numbers import Real
from typing import Any, Final, Literal, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.core._checks import (
    as_float_array,
    check_consistent_length,
    check_probabilities,
    check_sample_weight,
)
from app.errors import InvalidInput, UndefinedMetricError

Reduction: TypeAlias = Literal["mean", "sum", "none"]
#: A reduced loss is a Python float; ``reduction="none"`` gives the float64 array of losses.
LossValue: TypeAlias = float | NDArray[np.float64]
Float64Array: TypeAlias = NDArray[np.float64]

REDUCTIONS: Final[tuple[Reduction, ...]] = ("mean", "sum", "none")

#: Probabilities are clipped to ``[PROBABILITY_EPS, 1 - PROBABILITY_EPS]`` before taking logs.
#: This is float64 machine epsilon, the value scikit-learn's ``log_loss`` clips float64 input
#: with, so our cross-entropies equal sklearn's even at probabilities of exactly 0 or 1. It clips
#: nothing inside (1e-7, 1 - 1e-7), where we therefore agree with PyTorch to rounding; PyTorch
#: instead clamps each log term at -100, so at p < eps (or 1 - p < eps) a term costs
#: -log(eps) ~= 36.04 here and up to 100 there.
PROBABILITY_EPS: Final[float] = float(np.finfo(np.float64).eps)


def check_reduction(reduction: object, allowed: tuple[Reduction, ...] = REDUCTIONS) -> Reduction:
    """Return ``reduction`` if it is one of ``allowed``, else raise naming the field."""
    if not isinstance(reduction, str) or reduction not in allowed:
        raise InvalidInput(
            f"is {reduction!r}: must be one of {', '.join(allowed)}", field="reduction"
        )
    return reduction


def check_real(
    value: object,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a finite float within the given bounds, else raise naming ``name``.

    Booleans are rejected: ``delta=True`` is a client bug, not the number 1.
    """
    if isinstance(value, bool | np.bool_) or not isinstance(value, Real):
        raise InvalidInput(f"is {value!r}: must be a real number", field=name)
    x = float(value)
    lo_ok = low is None or (x > low if low_open else x >= low)
    hi_ok = high is None or (x < high if high_open else x <= high)
    if not np.isfinite(x) or not (lo_ok and hi_ok):
        lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "" if high is None else f"{high:g}" + (")" if high_open else "]")
        where = f"in {lo or '(-inf'}, {hi or 'inf)'}"
        raise InvalidInput(f"is {value!r}: must be finite and {where}", field=name)
    return x


def check_flag(value: object, name: str) -> bool:
    """Return ``value`` if it is a boolean, else raise naming ``name``."""
    if not isinstance(value, bool | np.bool_):
        raise InvalidInput(f"is {value!r}: must be true or false", field=name)
    return bool(value)


def raise_first(mask: NDArray[np.bool_], arr: NDArray[Any], field: str, why: str) -> None:
    """If any of ``mask`` is set, raise naming the first such index of ``field`` and its value."""
    if mask.any():
        idx = np.unravel_index(int(np.argmax(mask)), mask.shape)
        where = field + "".join(f"[{int(i)}]" for i in idx)
        raise InvalidInput(f"{where} is {arr[idx].item()!r}: {why}", field=field)


def times(a: ArrayLike, b: ArrayLike) -> Float64Array:
    """``a * b``, but 0 wherever ``a == 0`` even if ``b`` is ±inf (the ``0 log 0 = 0`` rule).

    Log-probabilities of extreme logits can be ``-inf``; a zero target or class weight must
    still contribute nothing rather than NaN.
    """
    a_, b_ = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    out = np.zeros(a_.shape)
    np.multiply(a_, b_, out=out, where=a_ != 0)
    return out


def to_float64(arr: NDArray[Any]) -> Float64Array:
    """Upcast after validation: float32 input is accepted, arithmetic is float64."""
    return np.asarray(arr, dtype=np.float64)


def paired_arrays(
    y_true: ArrayLike, y_pred: ArrayLike, *, ndim: tuple[int, ...] = (1, 2)
) -> tuple[Float64Array, Float64Array]:
    """Validate two finite arrays of the same shape and return them as float64."""
    t = as_float_array(y_true, "y_true", ndim=ndim)
    p = as_float_array(y_pred, "y_pred", ndim=ndim)
    check_consistent_length(t.shape[0], y_pred=p)
    if p.shape != t.shape:
        raise InvalidInput(
            f"has shape {p.shape} but y_true has shape {t.shape}: shapes must match",
            field="y_pred",
        )
    return to_float64(t), to_float64(p)


def probabilities(values: ArrayLike, field: str, *, ndim: tuple[int, ...] = (1, 2)) -> Float64Array:
    """A finite float64 array with every value in [0, 1]."""
    arr = as_float_array(values, field, ndim=ndim)
    check_probabilities(arr, field, simplex=False)
    return to_float64(arr)


def class_indices(y_true: ArrayLike, n: int, n_classes: int) -> NDArray[np.intp]:
    """Validate class indices: a 1-D array of ``n`` integers in ``[0, n_classes)``.

    Integral floats (``1.0`` from JSON) are accepted; labels are not encoded here because the
    column order of ``y_pred`` is the only class order a loss can know.
    """
    try:
        y = np.asarray(y_true)
    except ValueError:  # ragged nested lists
        raise InvalidInput("must be 1-D class indices", field="y_true") from None
    if y.ndim != 1:
        raise InvalidInput(f"must be 1-D class indices, got shape {y.shape}", field="y_true")
    check_consistent_length(n, y_true=y)
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            i = int(np.argmax(bad))
            raise InvalidInput(
                f"y_true[{i}] is {y[i]!r}: class indices must be integers", field="y_true"
            )
    elif y.dtype.kind not in "iub":
        raise InvalidInput(
            f"must be integer class indices (column numbers of y_pred), got dtype {y.dtype}",
            field="y_true",
        )
    out_of_range = (y < 0) | (y >= n_classes)
    if out_of_range.any():
        i = int(np.argmax(out_of_range))
        raise InvalidInput(
            f"y_true[{i}] is {y[i].item()!r}: class indices must lie in [0, {n_classes}) "
            f"for y_pred with {n_classes} columns",
            field="y_true",
        )
    return y.astype(np.intp)


def class_weight(weight: ArrayLike | None, n_classes: int) -> Float64Array | None:
    """Validate a per-class weight vector of length ``n_classes`` (non-negative, finite)."""
    if weight is None:
        return None
    w = as_float_array(weight, "weight", ndim=1, dtype=np.float64)
    if w.shape[0] != n_classes:
        raise InvalidInput(
            f"has {w.shape[0]} entries but y_pred has {n_classes} classes", field="weight"
        )
    if (w < 0).any():
        i = int(np.argmax(w < 0))
        raise InvalidInput(f"weight[{i}] is {float(w[i])!r}: weights must be >= 0", field="weight")
    return to_float64(w)


def sample_weights(sample_weight: ArrayLike | None, n: int) -> Float64Array | None:
    """Validate per-sample weights (see :func:`app.core._checks.check_sample_weight`)."""
    w = check_sample_weight(sample_weight, n)
    return None if w is None else to_float64(w)


def reduce_loss(
    loss: Float64Array,
    sample_weight: Float64Array | None,
    reduction: Reduction,
    *,
    norm: Float64Array | None = None,
) -> LossValue:
    """Weight and reduce an unreduced loss array.

    Parameters
    ----------
    loss : ndarray of shape (n_samples,) or (n_samples, ...)
        Per-sample or per-element losses.
    sample_weight : ndarray of shape (n_samples,) or None
        Broadcast over the trailing dimensions of ``loss``.
    reduction : {"mean", "sum", "none"}
    norm : ndarray of shape (n_samples,), optional
        Per-sample denominator weight for ``"mean"`` (PyTorch's class weight of the target);
        without it every element counts once.

    Returns
    -------
    float or ndarray
        ``"none"``: ``w_i * l_i`` (``l_i`` unweighted). ``"sum"``: ``sum(w_i * l_i)``.
        ``"mean"``: ``sum(w_i * l_i) / sum(w_i * norm_i)``, where without ``norm`` the
        denominator counts each of the ``prod(loss.shape[1:])`` elements of a row.

    Raises
    ------
    UndefinedMetricError
        The ``"mean"`` denominator is zero (every present class has weight 0).
    """
    n = loss.shape[0]
    if sample_weight is not None:
        wb = sample_weight.reshape((n,) + (1,) * (loss.ndim - 1))
        # A zero weight drops the row even when its loss overflowed to inf (0 * inf is nan).
        weighted = np.zeros(np.broadcast_shapes(wb.shape, loss.shape))
        np.multiply(wb, loss, out=weighted, where=wb != 0)
    else:
        weighted = loss
    if reduction == "none":
        return weighted
    with np.errstate(over="ignore"):
        total = float(np.sum(weighted))
    if reduction == "sum":
        return total
    per_row = loss.size // n
    if norm is not None:
        denom = float(np.sum(norm if sample_weight is None else sample_weight * norm))
    else:
        denom = (n if sample_weight is None else float(np.sum(sample_weight))) * per_row
    if denom == 0:
        raise UndefinedMetricError(
            "the weighted mean is undefined: the class weights of the rows present sum to zero"
        )
    return total / denom
