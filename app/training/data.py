"""Seeded train/validation splits as row indices (numpy only).

Both helpers return ``(train_idx, val_idx)``: sorted int64 row indices that partition
``range(n)``, so the caller slices its own arrays (``X[train_idx]``) and keeps row order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.errors import InvalidInput

IndexPair = tuple[NDArray[np.int64], NDArray[np.int64]]


def _fraction(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        raise InvalidInput(f"is {value!r}: must be a number in (0, 1)", field="val_fraction")
    f = float(value)
    if not 0.0 < f < 1.0:
        raise InvalidInput(f"is {value!r}: must be in (0, 1)", field="val_fraction")
    return f


def _one_d(values: ArrayLike, field: str) -> NDArray[Any]:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidInput(f"must be 1-D, got shape {arr.shape}", field=field)
    if arr.size < 2:
        raise InvalidInput(f"has {arr.size} rows: a split needs at least 2", field=field)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        i = int(np.argmax(~np.isfinite(arr)))
        raise InvalidInput(f"{field}[{i}] is {arr[i]!r}: values must be finite", field=field)
    return arr


def _round_half_up(x: NDArray[np.float64]) -> NDArray[np.int64]:
    # np.round rounds half to even, which would make 2.5 and 3.5 rows round differently
    return np.floor(x + 0.5).astype(np.int64)


def _sorted_pair(val_mask: NDArray[np.bool_]) -> IndexPair:
    return (np.flatnonzero(~val_mask).astype(np.int64), np.flatnonzero(val_mask).astype(np.int64))


def stratified_split(y: ArrayLike, *, val_fraction: float = 0.2, seed: int = 0) -> IndexPair:
    """Split rows so each class keeps its share on both sides.

    Each class ``c`` with ``n_c >= 2`` rows sends ``round(val_fraction · n_c)`` of them (at least
    1 and at most ``n_c - 1``) to validation, chosen uniformly at random; a class with a single
    row stays in training. The validation size is therefore ``val_fraction · n`` up to per-class
    rounding, and every class with two or more rows appears on both sides.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Class labels (any sortable values).
    val_fraction : float in (0, 1), default 0.2
    seed : int, default 0

    Returns
    -------
    train_idx, val_idx : ndarray of int64
        Sorted row indices.

    Raises
    ------
    InvalidInput
        ``y`` not 1-D or shorter than 2 rows, NaN labels, ``val_fraction`` outside (0, 1).

    Examples
    --------
    >>> train, val = stratified_split([0, 0, 0, 0, 1, 1, 1, 1, 1, 1], val_fraction=0.5, seed=1)
    >>> len(train), len(val)
    (5, 5)
    """
    frac = _fraction(val_fraction)
    labels = _one_d(y, "y")
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    n_val = np.clip(_round_half_up(frac * counts.astype(np.float64)), 1, counts - 1)
    rng = np.random.default_rng(seed)
    val_mask = np.zeros(labels.shape[0], dtype=bool)
    # one shuffle for all rows, then a stable sort by class: each class's rows come out in a
    # random order, so its first n_val[c] rows are a uniform sample — no loop over classes
    order = rng.permutation(labels.shape[0])
    order = order[np.argsort(inverse[order], kind="stable")]
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.arange(labels.shape[0]) - np.repeat(starts, counts)
    val_mask[order] = rank < np.repeat(n_val, counts)
    return _sorted_pair(val_mask)


def group_split(groups: ArrayLike, *, val_fraction: float = 0.2, seed: int = 0) -> IndexPair:
    """Split rows by group: all rows of a group land on the same side.

    Groups are shuffled and taken in that order into validation; the number of groups taken is
    the one whose row count is closest to ``val_fraction · n`` (at least one group on each
    side). Unlike scikit-learn's ``GroupShuffleSplit``, which counts groups, the fraction is
    of rows, so a few large groups do not swamp the validation set.

    Parameters
    ----------
    groups : array-like of shape (n_samples,)
        Group ids (patient, user, session, ...).
    val_fraction : float in (0, 1), default 0.2
    seed : int, default 0

    Returns
    -------
    train_idx, val_idx : ndarray of int64
        Sorted row indices.

    Raises
    ------
    InvalidInput
        Fewer than two distinct groups, ``groups`` not 1-D, ``val_fraction`` outside (0, 1).

    Examples
    --------
    >>> train, val = group_split(["a", "a", "b", "b", "c", "c"], val_fraction=0.3, seed=0)
    >>> len(val)
    2
    """
    frac = _fraction(val_fraction)
    g = _one_d(groups, "groups")
    _, inverse, counts = np.unique(g, return_inverse=True, return_counts=True)
    if counts.size < 2:
        raise InvalidInput("has a single group: cannot split it into two sides", field="groups")
    rng = np.random.default_rng(seed)
    order = rng.permutation(counts.size)
    taken = np.cumsum(counts[order])[:-1]  # rows in validation after taking 1, 2, ... groups
    k = int(np.argmin(np.abs(taken - frac * g.shape[0]))) + 1
    val_groups = np.zeros(counts.size, dtype=bool)
    val_groups[order[:k]] = True
    return _sorted_pair(val_groups[inverse])
