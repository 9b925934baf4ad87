"""Image arrays for ``cnn`` runs: shape checks and a synthetic data set (numpy only).

Runs store and train on images flattened to rows of C·H·W values (see :mod:`app.training.cnn`);
:func:`as_image_rows` is the one place that turns what a client posts — (n, C, H, W), (n, H, W)
for one channel, or already-flat rows — into those rows, checking the shape against the run's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.core._checks import as_float_array
from app.errors import InvalidInput

_F32_MAX = float(np.finfo(np.float32).max)


def image_shape_of(X: NDArray[Any], field: str) -> tuple[int, int, int]:
    """(C, H, W) of a batch of images shaped (n, C, H, W) or (n, H, W).

    >>> image_shape_of(np.zeros((5, 8, 8)), "X")
    (1, 8, 8)
    >>> image_shape_of(np.zeros((5, 64)), "X")
    Traceback (most recent call last):
    ...
    app.errors.InvalidInput: X: has shape (5, 64): images must be (n, C, H, W) or (n, H, W)
    """
    if X.ndim == 3:
        return (1, int(X.shape[1]), int(X.shape[2]))
    if X.ndim == 4:
        return (int(X.shape[1]), int(X.shape[2]), int(X.shape[3]))
    raise InvalidInput(
        f"has shape {X.shape}: images must be (n, C, H, W) or (n, H, W)", field=field
    )


def as_image_rows(
    X: ArrayLike, field: str, *, shape: tuple[int, int, int] | None = None
) -> tuple[NDArray[np.float32], tuple[int, int, int]]:
    """Images as float32 rows of C·H·W values, and their (C, H, W).

    Parameters
    ----------
    X : array-like of shape (n, C, H, W) or (n, H, W), or (n, C·H·W) when ``shape`` is given
    field : str
        Named in errors.
    shape : (C, H, W), optional
        The shape the images must have (a trained run's); None accepts any.

    Raises
    ------
    InvalidInput
        Ragged, non-finite or beyond-float32 values, no rows, or a shape other than ``shape``.

    Examples
    --------
    >>> rows, shape = as_image_rows(np.zeros((2, 3, 4, 4)), "X")
    >>> rows.shape, shape
    ((2, 48), (3, 4, 4))
    >>> as_image_rows(np.zeros((2, 5, 5)), "X", shape=(1, 4, 4))
    Traceback (most recent call last):
    ...
    app.errors.InvalidInput: X: images are 1×5×5; the run takes 1×4×4
    """
    arr = as_float_array(X, field, ndim=(2, 3, 4), dtype=np.float64)
    big = np.abs(arr) > _F32_MAX
    if big.any():
        idx = tuple(int(i) for i in np.argwhere(big)[0])
        raise InvalidInput(f"{field}{list(idx)} is {arr[idx]!r}: beyond float32", field=field)
    n = arr.shape[0]
    if arr.ndim == 2:
        if shape is None:
            raise InvalidInput(
                f"has shape {arr.shape}: images must be (n, C, H, W) or (n, H, W)", field=field
            )
        if arr.shape[1] != int(np.prod(shape)):
            raise InvalidInput(
                f"rows have {arr.shape[1]} values; the run takes images of "
                f"{'×'.join(map(str, shape))} = {int(np.prod(shape))} values",
                field=field,
            )
        got = shape
    else:
        got = image_shape_of(arr, field)
        if shape is not None and got != tuple(shape):
            raise InvalidInput(
                f"images are {'×'.join(map(str, got))}; the run takes {'×'.join(map(str, shape))}",
                field=field,
            )
    return arr.reshape(n, -1).astype(np.float32), got


def make_patch_images(
    n: int, *, size: int = 16, patch: int = 4, noise: float = 0.3, seed: int = 0
) -> tuple[NDArray[np.float32], NDArray[np.int64], NDArray[np.int64]]:
    """A synthetic set whose label is decided by a bright patch at a random position.

    Every image (1×size×size) holds Gaussian noise and a dim decoy patch (+0.6) at a random
    position; the images of class 1 (half of them) also hold a bright patch (+2.0) at another
    random position that does not overlap the decoy. A model must find the bright patch to
    classify, so its explanations can be checked against where the patch is (the "pointing
    game" of Grad-CAM).

    Parameters
    ----------
    n : int
        Number of images.
    size, patch : int
        Image side and patch side, in pixels.
    noise : float
        Standard deviation of the background noise.
    seed : int

    Returns
    -------
    X : ndarray of shape (n, 1, size, size), float32
    y : ndarray of shape (n,), int64
        0 or 1.
    boxes : ndarray of shape (n, 2), int64
        Top-left (row, column) of the bright patch; -1 for class 0.

    Examples
    --------
    >>> X, y, boxes = make_patch_images(6, seed=1)
    >>> X.shape, int(y.sum()), bool((boxes[y == 0] == -1).all())
    ((6, 1, 16, 16), 3, True)
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, noise, size=(n, 1, size, size))
    y = np.zeros(n, dtype=np.int64)
    y[rng.permutation(n)[: n // 2]] = 1
    boxes = np.full((n, 2), -1, dtype=np.int64)
    span = size - patch + 1
    for i in range(n):
        r0, c0 = rng.integers(0, span, size=2)
        X[i, 0, r0 : r0 + patch, c0 : c0 + patch] += 0.6
        if y[i]:
            while True:  # a position clear of the decoy
                r, c = rng.integers(0, span, size=2)
                if abs(r - r0) >= patch or abs(c - c0) >= patch:
                    break
            X[i, 0, r : r + patch, c : c + patch] += 2.0
            boxes[i] = (r, c)
    return X.astype(np.float32), y, boxes
