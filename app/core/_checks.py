"""Input checks for the numeric core.

Validate once at the boundary, then trust inside. Every check raises
:class:`app.errors.InvalidInput` naming the field and, where there is one, the first bad index and
value, so a client can find the problem in a batch of millions of rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.errors import InvalidInput

#: Rows of class probabilities must sum to 1 within this absolute tolerance. Rows are not
#: renormalized: a model whose outputs do not sum to one is reported, not silently fixed.
SIMPLEX_ATOL = 1e-6


def _first_index(mask: NDArray[np.bool_]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))


def _fmt_index(field: str, index: tuple[int, ...]) -> str:
    return field + "".join(f"[{i}]" for i in index)


def as_float_array(
    values: ArrayLike,
    field: str,
    *,
    ndim: int | tuple[int, ...] | None = None,
    dtype: type[np.floating[Any]] | np.dtype[Any] | None = None,
    allow_empty: bool = False,
) -> NDArray[np.floating[Any]]:
    """Convert ``values`` to a finite floating array.

    float32 input stays float32 unless ``dtype`` says otherwise (the engine accumulates in float64
    anyway); anything else becomes float64.

    Raises
    ------
    InvalidInput
        Ragged or non-numeric input, wrong number of dimensions, an empty batch, NaN or ±inf.
    """
    try:
        arr = np.asarray(values)
        if dtype is not None:
            arr = arr.astype(dtype, copy=False)
        elif arr.dtype != np.float32:
            arr = arr.astype(np.float64, copy=False)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"must be an array of numbers ({exc})", field=field) from None
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if allowed is not None and arr.ndim not in allowed:
        want = " or ".join(f"{d}-D" for d in allowed)
        raise InvalidInput(f"must be {want}, got shape {arr.shape}", field=field)
    if arr.size == 0 and not allow_empty:
        raise InvalidInput("is empty: the batch needs at least one row", field=field)
    check_finite(arr, field)
    return arr


def check_finite(arr: NDArray[Any], field: str) -> None:
    """Raise if ``arr`` holds NaN or ±inf, naming the first offending index."""
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        idx = _first_index(~np.isfinite(arr))
        raise InvalidInput(
            f"{_fmt_index(field, idx)} is {arr[idx]!r}: values must be finite", field=field
        )


def check_consistent_length(n: int, **arrays: NDArray[Any] | None) -> None:
    """Every given array must have ``n`` rows."""
    for field, arr in arrays.items():
        if arr is not None and arr.shape[0] != n:
            raise InvalidInput(
                f"has {arr.shape[0]} rows but y_true has {n}: lengths must match", field=field
            )


def check_probabilities(p: NDArray[np.floating[Any]], field: str, *, simplex: bool) -> None:
    """Values in [0, 1]; with ``simplex`` each row must also sum to 1 within ``SIMPLEX_ATOL``."""
    bad = (p < 0) | (p > 1)
    if bad.any():
        idx = _first_index(bad)
        raise InvalidInput(
            f"{_fmt_index(field, idx)} is {float(p[idx])!r}: probabilities must lie in [0, 1] "
            "(send score_type='logit' for unnormalized scores)",
            field=field,
        )
    if simplex:
        sums = p.sum(axis=1, dtype=np.float64)
        off = np.abs(sums - 1.0) > SIMPLEX_ATOL
        if off.any():
            i = int(np.argmax(off))
            raise InvalidInput(
                f"row {i} sums to {float(sums[i])!r}: class probabilities must sum to 1 "
                f"(tolerance {SIMPLEX_ATOL})",
                field=field,
            )


def check_sample_weight(
    sample_weight: ArrayLike | None, n: int, field: str = "sample_weight"
) -> NDArray[np.float64] | None:
    """Finite, non-negative weights, one per row, not all zero. ``None`` stays ``None``."""
    if sample_weight is None:
        return None
    w = as_float_array(sample_weight, field, ndim=1, dtype=np.float64)
    check_consistent_length(n, **{field: w})
    if (w < 0).any():
        i = int(np.argmax(w < 0))
        raise InvalidInput(f"{field}[{i}] is {float(w[i])!r}: weights must be >= 0", field=field)
    if not w.any():
        raise InvalidInput("all weights are zero: nothing to evaluate", field=field)
    return w.astype(np.float64, copy=False)


def encode_labels(
    y_true: ArrayLike,
    labels: Sequence[Any] | None = None,
    field: str = "y_true",
) -> tuple[NDArray[Any], NDArray[np.intp]]:
    """Map class labels (strings or integers) to column indices.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Class labels.
    labels : sequence, optional
        The classes in column order. Without it, the sorted distinct values of ``y_true``.

    Returns
    -------
    classes : ndarray of shape (n_classes,)
    indices : ndarray of shape (n_samples,)
        ``classes[indices] == y_true``.

    Raises
    ------
    InvalidInput
        A label outside ``labels``, duplicated ``labels``, mixed strings and numbers.
    """
    y = np.asarray(y_true)
    if y.dtype.kind == "U" and isinstance(y_true, list | tuple):
        # numpy turns ["a", 1] into strings silently: a list must hold one kind of label.
        kinds = {type(v) for v in y_true}
        if not kinds <= {str}:
            raise InvalidInput("labels must be all strings or all integers", field=field)
    if y.ndim != 1:
        raise InvalidInput(f"must be 1-D, got shape {y.shape}", field=field)
    if y.size == 0:
        raise InvalidInput("is empty: the batch needs at least one row", field=field)
    if y.dtype.kind == "O":
        kinds = {type(v) for v in y.tolist()}
        if not (kinds <= {str} or kinds <= {int, bool}):
            raise InvalidInput("labels must be all strings or all integers", field=field)
        y = y.astype(str if str in kinds else np.int64)
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or not np.array_equal(y, np.round(y)):
            i = int(np.argmax(~np.isfinite(y) | (y != np.round(y))))
            raise InvalidInput(
                f"{field}[{i}] is {y[i]!r}: class labels must be integers", field=field
            )
        y = y.astype(np.int64)
    if labels is None:
        if y.dtype.kind in "biu":
            return _encode_small_ints(y)
        classes, indices = np.unique(y, return_inverse=True)
        return classes, indices.astype(np.intp, copy=False)
    classes = np.asarray(labels)
    if (classes.dtype.kind in "US" and y.dtype.kind in "iub") or (
        classes.dtype.kind in "iub" and y.dtype.kind in "US"
    ):
        raise InvalidInput("labels and y_true mix strings and numbers", field="labels")
    if len(np.unique(classes)) != len(classes):
        raise InvalidInput("labels must be distinct", field="labels")
    order = np.argsort(classes, kind="stable")
    pos = np.searchsorted(classes[order], y)
    pos = np.minimum(pos, len(classes) - 1)
    found = classes[order][pos] == y
    if not found.all():
        i = int(np.argmax(~found))
        raise InvalidInput(
            f"{field}[{i}] is {y[i].item()!r}, which is not one of labels {classes.tolist()}",
            field=field,
        )
    return classes, order[pos].astype(np.intp, copy=False)


def _encode_small_ints(y: NDArray[Any]) -> tuple[NDArray[Any], NDArray[np.intp]]:
    """``np.unique(y, return_inverse=True)`` for integer labels in O(n), without a sort.

    Class labels are few and small, so a counting pass finds them; the sort inside
    ``np.unique`` would cost as much as the ranking sort itself on large batches.
    """
    if y.dtype.kind == "b":
        y = y.view(np.uint8)
    lo, hi = int(y.min()), int(y.max())
    if hi - lo > 1_000_000:
        classes, indices = np.unique(y, return_inverse=True)
        return classes, indices.astype(np.intp, copy=False)
    shifted = (y - lo).astype(np.intp, copy=False) if lo else y.astype(np.intp, copy=False)
    present = np.flatnonzero(np.bincount(shifted, minlength=hi - lo + 1))
    lookup = np.empty(hi - lo + 1, dtype=np.intp)
    lookup[present] = np.arange(present.size)
    return (present + lo).astype(np.int64), lookup[shifted]
