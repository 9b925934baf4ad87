"""Overlap losses of segmentation masks: Tversky, focal Tversky and soft Jaccard (IoU).

Two input layouts, told apart by the number of dimensions:

- **binary**: ``y_pred`` of shape ``(n, H, W)`` (or ``(n, *spatial)``, e.g. ``(n, n_pixels)``)
  holds foreground probabilities and ``y_true`` of the same shape holds 0/1 masks (soft targets
  in [0, 1] are accepted).
- **multiclass**: ``y_pred`` of shape ``(n, C, H, W)`` holds class probabilities (summing to 1
  over axis 1) and ``y_true`` of shape ``(n, H, W)`` holds class ids in ``[0, C)``, one-hot
  encoded internally.

For sample ``i`` and class ``c`` (one class in the binary layout), with soft counts over the
pixels ``TP = Σ p t``, ``FP = Σ p (1 - t)``, ``FN = Σ (1 - p) t``, the Tversky index is::

    TI = (TP + s) / (TP + α FP + β FN + s)

and each loss is ``mean_c L(TI_ic)`` per sample, then reduced over samples (``"none"`` gives
one loss per sample). ``L`` is ``1 - TI`` (Tversky, Jaccard) or ``(1 - TI)^γ`` (focal Tversky).
The mean runs over all ``C`` classes, also a class absent from both target and prediction,
which with ``s > 0`` has ``TI = 1`` and loss 0. A zero denominator (only with ``s = 0``) counts
as perfect agreement, ``TI = 1``.

Relations: ``α = β = 1`` is the soft Jaccard index ``(TP + s) / (TP + FP + FN + s)``;
``α = β = 1/2`` is the soft Dice coefficient ``(2 TP + 2s) / (2 TP + FP + FN + 2s)``, so
:func:`app.core.losses.dice` with ``smooth=s`` on masks flattened to ``(n, H·W)`` equals
``tversky(alpha=0.5, beta=0.5, smooth=s / 2)``. ``smooth`` defaults to 1.0 for every overlap
loss, as for :func:`~app.core.losses.dice`; it is added to counts of pixels, so its effect
shrinks as masks grow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.core._checks import SIMPLEX_ATOL, as_float_array, check_consistent_length
from app.core.losses._base import (
    Float64Array,
    LossValue,
    Reduction,
    check_real,
    check_reduction,
    raise_first,
    reduce_loss,
    sample_weights,
    to_float64,
)
from app.errors import InvalidInput

_LAYOUTS = (
    "y_pred must be (n, H, W) probabilities with y_true of the same shape (binary), or "
    "(n, C, H, W) class probabilities with y_true of shape (n, H, W) holding class ids"
)


def _binary_counts(
    t: Float64Array, p: Float64Array
) -> tuple[Float64Array, Float64Array, Float64Array]:
    t2, p2 = t.reshape(t.shape[0], -1), p.reshape(p.shape[0], -1)
    tp = np.sum(p2 * t2, axis=1)
    fp = np.sum(p2 * (1.0 - t2), axis=1)
    fn = np.sum((1.0 - p2) * t2, axis=1)
    return tp[:, None], fp[:, None], fn[:, None]


def _class_ids(y_true: ArrayLike, n_classes: int) -> NDArray[np.intp]:
    try:
        y = np.asarray(y_true)
    except ValueError:  # ragged nested lists
        raise InvalidInput("must be an array of class ids", field="y_true") from None
    if y.dtype.kind == "f":
        raise_first(~np.isfinite(y) | (y != np.round(y)), y, "y_true", "class ids must be integers")
    elif y.dtype.kind not in "iub":
        raise InvalidInput(f"must hold integer class ids, got dtype {y.dtype}", field="y_true")
    raise_first(
        (y < 0) | (y >= n_classes),
        y,
        "y_true",
        f"class ids must lie in [0, {n_classes}) for y_pred with {n_classes} classes (axis 1)",
    )
    return y.astype(np.intp)


def _multiclass_counts(
    y: NDArray[np.intp], p: Float64Array
) -> tuple[Float64Array, Float64Array, Float64Array]:
    n, n_classes = p.shape[:2]
    p3, y2 = p.reshape(n, n_classes, -1), y.reshape(n, -1)
    # Sums over the one-hot target without building it: TP_ic adds p_ic at the pixels of class c.
    p_true = np.take_along_axis(p3, y2[:, None, :], axis=1)[:, 0, :]
    cell = (np.arange(n)[:, None] * n_classes + y2).ravel()
    tp = to_float64(np.bincount(cell, weights=p_true.ravel(), minlength=n * n_classes))
    tp = tp.reshape(n, n_classes)
    true = np.bincount(cell, minlength=n * n_classes).reshape(n, n_classes)
    fp: Float64Array = np.maximum(np.sum(p3, axis=2) - tp, 0.0)
    fn: Float64Array = np.maximum(true - tp, 0.0)
    return tp, fp, fn


def _check_simplex(p: Float64Array) -> None:
    sums = np.sum(p, axis=1)
    off = np.abs(sums - 1.0) > SIMPLEX_ATOL
    if off.any():
        idx = np.unravel_index(int(np.argmax(off)), off.shape)
        where = f"y_pred[{int(idx[0])}][:]" + "".join(f"[{int(i)}]" for i in idx[1:])
        raise InvalidInput(
            f"{where} sums to {float(sums[idx])!r}: class probabilities must sum to 1 over "
            f"axis 1 (tolerance {SIMPLEX_ATOL})",
            field="y_pred",
        )


def _counts(
    y_true: ArrayLike, y_pred: ArrayLike
) -> tuple[Float64Array, Float64Array, Float64Array]:
    """Validate either layout and return soft ``TP, FP, FN`` of shape ``(n, n_classes)``."""
    p = as_float_array(y_pred, "y_pred")
    try:
        t_ndim = np.ndim(y_true)
    except ValueError:
        raise InvalidInput("must be an array of numbers", field="y_true") from None
    multiclass = p.ndim == t_ndim + 1
    if p.ndim < 2 or (p.ndim != t_ndim and not multiclass) or (multiclass and t_ndim < 2):
        raise InvalidInput(
            f"{_LAYOUTS}; got y_pred of shape {p.shape} and y_true with {t_ndim} dimensions",
            field="y_pred",
        )
    raise_first((p < 0) | (p > 1), p, "y_pred", "probabilities must lie in [0, 1]")
    if not multiclass:
        t = as_float_array(y_true, "y_true")
        raise_first((t < 0) | (t > 1), t, "y_true", "mask values must lie in [0, 1]")
        check_consistent_length(t.shape[0], y_pred=p)
        if p.shape != t.shape:
            raise InvalidInput(
                f"has shape {p.shape} but y_true has shape {t.shape}: masks must match",
                field="y_pred",
            )
        return _binary_counts(to_float64(t), to_float64(p))
    y = _class_ids(y_true, p.shape[1])
    check_consistent_length(y.shape[0], y_pred=p)
    if p.shape[2:] != y.shape[1:]:
        raise InvalidInput(
            f"has masks of shape {p.shape[2:]} (shape {p.shape}) but y_true has masks of shape "
            f"{y.shape[1:]}: masks must match",
            field="y_pred",
        )
    p64 = to_float64(p)
    _check_simplex(p64)
    return _multiclass_counts(y, p64)


def _overlap_loss(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    sample_weight: ArrayLike | None,
    reduction: Reduction,
    *,
    alpha: float,
    beta: float,
    smooth: float,
    gamma: float = 1.0,
) -> LossValue:
    red = check_reduction(reduction)
    tp, fp, fn = _counts(y_true, y_pred)
    w = sample_weights(sample_weight, tp.shape[0])
    numerator = tp + smooth
    denominator = tp + alpha * fp + beta * fn + smooth
    index = np.divide(numerator, denominator, out=np.ones_like(tp), where=denominator != 0)
    per_class: NDArray[Any] = 1.0 - index
    if gamma != 1.0:
        per_class = per_class**gamma
    return reduce_loss(np.mean(per_class, axis=1), w, red)


def tversky(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    alpha: float = 0.3,
    beta: float = 0.7,
    smooth: float = 1.0,
) -> LossValue:
    """Tversky loss (Salehi et al. 2017), ``1 - (TP + s) / (TP + α FP + β FN + s)`` per mask.

    Per sample the mean over classes (see the module docstring for layouts and counts).
    ``β > α`` penalizes missed foreground more than false alarms, for small structures;
    ``α = β = 0.5`` is the soft Dice loss with smoothing ``2s``, ``α = β = 1`` :func:`jaccard`.

    Parameters
    ----------
    y_true : array-like of shape (n, H, W) or (n, *spatial)
        0/1 masks (binary), or class ids in ``[0, C)`` when ``y_pred`` has a class axis.
    y_pred : array-like of shape (n, H, W) or (n, C, H, W)
        Foreground probabilities, or class probabilities summing to 1 over axis 1.
    sample_weight : array-like of shape (n,), optional
    reduction : {"mean", "sum", "none"}
        Over samples; ``"none"`` gives shape ``(n,)``.
    alpha : float, default 0.3
        Weight of the false positives, >= 0.
    beta : float, default 0.7
        Weight of the false negatives, >= 0 (0.3 / 0.7: Salehi et al.'s best setting).
    smooth : float, default 1.0
        Added to numerator and denominator, >= 0.

    Examples
    --------
    >>> tversky([[[1, 1], [0, 0]]], [[[1.0, 0.0], [1.0, 0.0]]], smooth=0.0)  # TP=FP=FN=1
    0.5
    >>> tversky([[0, 1]], [[[0.9, 0.2], [0.1, 0.8]]], alpha=1.0, beta=1.0, smooth=0.0)  # (n, C, P)
    0.26136
    """
    return _overlap_loss(
        y_true,
        y_pred,
        sample_weight,
        reduction,
        alpha=check_real(alpha, "alpha", low=0.0),
        beta=check_real(beta, "beta", low=0.0),
        smooth=check_real(smooth, "smooth", low=0.0),
    )


def focal_tversky(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    alpha: float = 0.3,
    beta: float = 0.7,
    gamma: float = 0.75,
    smooth: float = 1.0,
) -> LossValue:
    """Focal Tversky loss (Abraham & Khan 2019), ``(1 - TI)^γ`` per mask and class.

    ``TI`` as in :func:`tversky`; per sample the mean over classes of ``(1 - TI_c)^γ``. The paper
    writes the exponent ``1/γ`` and recommends ``γ = 4/3``: that is ``gamma=0.75`` here (the
    authors' code and segmentation_models_pytorch also write it as the exponent). ``γ < 1``
    raises the loss of masks that are already nearly right, focusing training on them;
    ``γ = 1`` is :func:`tversky`.

    Parameters
    ----------
    y_true, y_pred, sample_weight, reduction, alpha, beta, smooth
        As :func:`tversky`.
    gamma : float, default 0.75
        The exponent, > 0.

    Examples
    --------
    >>> focal_tversky([[[1, 1], [0, 0]]], [[[1.0, 0.0], [1.0, 0.0]]], smooth=0.0, gamma=2.0)
    0.25
    """
    return _overlap_loss(
        y_true,
        y_pred,
        sample_weight,
        reduction,
        alpha=check_real(alpha, "alpha", low=0.0),
        beta=check_real(beta, "beta", low=0.0),
        smooth=check_real(smooth, "smooth", low=0.0),
        gamma=check_real(gamma, "gamma", low=0.0, low_open=True),
    )


def jaccard(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    smooth: float = 1.0,
) -> LossValue:
    """Soft Jaccard (IoU) loss, ``1 - (TP + s) / (TP + FP + FN + s)`` per mask.

    ``TP + FP + FN = Σ p + Σ t - Σ p t``: the soft intersection over the soft union. Per sample
    the mean over classes (see the module docstring). On hard 0/1 masks with ``smooth=0`` it is
    ``1 - IoU``; for the Dice coefficient ``D`` of the same masks, ``IoU = D / (2 - D)``.

    Parameters
    ----------
    y_true, y_pred, sample_weight, reduction
        As :func:`tversky`.
    smooth : float, default 1.0
        Added to numerator and denominator, >= 0.

    Examples
    --------
    >>> jaccard([[[1, 1], [0, 0]]], [[[1.0, 0.0], [1.0, 0.0]]], smooth=0.0)  # IoU = 1/3
    0.66667
    >>> jaccard([[[0, 0]], [[1, 1]]], [[[0.0, 0.0]], [[1.0, 1.0]]], reduction="none")
    array([0., 0.])
    """
    return _overlap_loss(
        y_true,
        y_pred,
        sample_weight,
        reduction,
        alpha=1.0,
        beta=1.0,
        smooth=check_real(smooth, "smooth", low=0.0),
    )
