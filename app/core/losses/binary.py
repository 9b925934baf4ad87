"""Binary and multilabel losses on probabilities or logits of the positive class.

``y_true`` holds targets in [0, 1] (hard 0/1 labels or soft targets), shape ``(n_samples,)`` or
``(n_samples, n_labels)``. Cross-entropies and focal loss are per element, like PyTorch's
``reduction="none"``; dice is per sample (row).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit

from app.core._checks import as_float_array, check_consistent_length
from app.core.losses._base import (
    PROBABILITY_EPS,
    Float64Array,
    LossValue,
    Reduction,
    check_flag,
    check_real,
    check_reduction,
    probabilities,
    raise_first,
    reduce_loss,
    sample_weights,
    to_float64,
)
from app.errors import InvalidInput


def _targets_and_scores(
    y_true: ArrayLike, y_pred: ArrayLike, *, scores_are_probabilities: bool
) -> tuple[Float64Array, Float64Array]:
    t = probabilities(y_true, "y_true")
    if scores_are_probabilities:
        p = probabilities(y_pred, "y_pred")
    else:
        p = to_float64(as_float_array(y_pred, "y_pred", ndim=(1, 2)))
    check_consistent_length(t.shape[0], y_pred=p)
    if p.shape != t.shape:
        raise InvalidInput(
            f"has shape {p.shape} but y_true has shape {t.shape}: shapes must match",
            field="y_pred",
        )
    return t, p


def _softplus(x: Float64Array) -> Float64Array:
    """``log(1 + exp(x))`` without overflow: exact to rounding for every finite ``x``."""
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _bce_probabilities(t: Float64Array, p: Float64Array) -> Float64Array:
    pc = np.clip(p, PROBABILITY_EPS, 1.0 - PROBABILITY_EPS)
    # log1p(-p) keeps precision for p near 0, where 1 - p rounds.
    return -(t * np.log(pc) + (1.0 - t) * np.log1p(-pc))


def _bce_logits(t: Float64Array, x: Float64Array, pos_weight: Float64Array | float) -> Float64Array:
    # -log σ(x) = softplus(-x) and -log(1 - σ(x)) = softplus(x): two non-negative terms, so no
    # cancellation (torch's (1 - y)x + softplus(-x) loses the tail for y = 0, x << 0).
    with np.errstate(over="ignore"):
        return pos_weight * t * _softplus(-x) + (1.0 - t) * _softplus(x)


def binary_cross_entropy(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> LossValue:
    """Binary cross-entropy from probabilities, ``torch.nn.functional.binary_cross_entropy``.

    ``-(y * log(p) + (1 - y) * log(1 - p))`` with ``p`` clipped to ``[eps, 1 - eps]``,
    ``eps = PROBABILITY_EPS`` (float64 machine epsilon, 2.22e-16, as ``sklearn.metrics.log_loss``).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,) or (n_samples, n_labels)
        Targets in [0, 1].
    y_pred : array-like of the same shape
        Probabilities of the positive class, in [0, 1].
    sample_weight : array-like of shape (n_samples,), optional
    reduction : {"mean", "sum", "none"}
        Per element; ``"mean"`` averages over all elements.

    Notes
    -----
    Equal to PyTorch for ``p`` in [eps, 1 - eps]. PyTorch clamps each log at -100 instead, so at
    ``p = 0`` with ``y = 1`` it reports 100 where we report ``-log(eps) ~= 36.04``; we follow
    scikit-learn there, whose ``log_loss`` this equals for 1-D hard labels.

    Examples
    --------
    >>> binary_cross_entropy([1, 0], [0.8, 0.4], reduction="none")
    array([0.22314, 0.51083])
    >>> binary_cross_entropy([1], [0.0])
    36.04365
    """
    red = check_reduction(reduction)
    t, p = _targets_and_scores(y_true, y_pred, scores_are_probabilities=True)
    w = sample_weights(sample_weight, t.shape[0])
    return reduce_loss(_bce_probabilities(t, p), w, red)


def binary_cross_entropy_with_logits(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    pos_weight: float | ArrayLike | None = None,
) -> LossValue:
    """Binary cross-entropy from logits, ``F.binary_cross_entropy_with_logits``.

    ``pos_weight * y * softplus(-x) + (1 - y) * softplus(x)`` where
    ``softplus(z) = max(z, 0) + log1p(exp(-|z|))``; with ``pos_weight = 1`` this is
    ``max(x, 0) - x*y + log1p(exp(-|x|))``. Finite and exact for any finite logit (±1e30 too).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,) or (n_samples, n_labels)
        Targets in [0, 1].
    y_pred : array-like of the same shape
        Logits (any finite real).
    pos_weight : float or array-like of shape (n_labels,), optional
        Weight of the positive term, >= 0, broadcast over the last axis as in PyTorch.

    Examples
    --------
    >>> binary_cross_entropy_with_logits([1, 0], [2.0, 1e4], reduction="none")
    array([1.26928e-01, 1.00000e+04])
    >>> binary_cross_entropy_with_logits([1.0], [0.0], pos_weight=3.0)
    2.07944
    """
    red = check_reduction(reduction)
    t, x = _targets_and_scores(y_true, y_pred, scores_are_probabilities=False)
    pw: Float64Array | float = 1.0
    if pos_weight is not None:
        pw_arr = to_float64(as_float_array(pos_weight, "pos_weight", ndim=(0, 1)))
        n_labels = t.shape[1] if t.ndim == 2 else 1
        if pw_arr.ndim == 1 and pw_arr.shape[0] not in (1, n_labels):
            raise InvalidInput(
                f"has {pw_arr.shape[0]} entries but y_pred has {n_labels} labels",
                field="pos_weight",
            )
        raise_first(pw_arr < 0, pw_arr, "pos_weight", "weights must be >= 0")
        pw = pw_arr
    w = sample_weights(sample_weight, t.shape[0])
    return reduce_loss(_bce_logits(t, x, pw), w, red)


def focal(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    gamma: float = 2.0,
    alpha: float | None = 0.25,
    from_logits: bool = False,
) -> LossValue:
    """Binary focal loss (Lin et al., 2017), ``torchvision.ops.sigmoid_focal_loss`` on logits.

    ``α_t * (1 - p_t)**γ * BCE(y, p)`` with ``p_t = p*y + (1 - p)*(1 - y)`` and
    ``α_t = α*y + (1 - α)*(1 - y)`` (no ``α_t`` factor when ``alpha`` is None; torchvision's
    ``alpha=-1``). The cross-entropy term is :func:`binary_cross_entropy_with_logits` for logits
    and the clipped :func:`binary_cross_entropy` for probabilities; ``γ = 0`` and no ``α`` give
    plain BCE.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,) or (n_samples, n_labels)
        Targets in [0, 1].
    y_pred : array-like of the same shape
        Probabilities, or logits with ``from_logits=True``.
    gamma : float, default 2.0
        Focusing exponent, >= 0.
    alpha : float or None, default 0.25
        Weight of the positive class, in [0, 1].
    from_logits : bool, default False

    Examples
    --------
    >>> focal([1, 0], [0.9, 0.9], reduction="none")
    array([2.63401e-04, 1.39882e+00])
    >>> focal([1], [0.0], from_logits=True, alpha=None)
    0.17329
    """
    g = check_real(gamma, "gamma", low=0.0)
    a = None if alpha is None else check_real(alpha, "alpha", low=0.0, high=1.0)
    logits = check_flag(from_logits, "from_logits")
    red = check_reduction(reduction)
    t, s = _targets_and_scores(y_true, y_pred, scores_are_probabilities=not logits)
    w = sample_weights(sample_weight, t.shape[0])
    if logits:
        ce = _bce_logits(t, s, 1.0)
        p, one_minus_p = expit(s), expit(-s)  # expit(-x) is 1 - p without the rounding
    else:
        ce = _bce_probabilities(t, s)
        p, one_minus_p = s, 1.0 - s
    # 1 - p_t, written so it needs no subtraction from 1 when y is 0 or 1
    one_minus_pt = p * (1.0 - t) + one_minus_p * t
    loss = ce * one_minus_pt**g
    if a is not None:
        loss = loss * (a * t + (1.0 - a) * (1.0 - t))
    return reduce_loss(loss, w, red)


def dice(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    smooth: float = 1.0,
) -> LossValue:
    """Soft dice loss per sample, ``1 - (2 Σ_l p_l y_l + s) / (Σ_l p_l + Σ_l y_l + s)``.

    The sums run over the labels of one row; reductions then run over samples. A 1-D input is
    ``n`` samples with one label each (shape ``(n, 1)``): for one batch-level dice over all
    samples, send them as a single row of shape ``(1, n)``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,) or (n_samples, n_labels)
        Targets in [0, 1].
    y_pred : array-like of the same shape
        Probabilities in [0, 1].
    smooth : float, default 1.0
        Added to numerator and denominator, >= 0. The usual segmentation default: it keeps a row
        whose target and prediction are both empty at loss 0 and damps the loss of nearly empty
        rows. With ``smooth=0`` and hard 0/1 input the loss is ``1 - F1`` of the row; a row with
        nothing predicted and nothing true then counts as perfect agreement (loss 0).
    reduction : {"mean", "sum", "none"}
        ``"none"`` gives one loss per sample, shape ``(n_samples,)``.

    Examples
    --------
    >>> dice([[1, 1, 0, 0]], [[1, 0, 1, 0]], smooth=0.0)
    0.5
    >>> dice([[0, 0], [1, 1]], [[0, 0], [1, 1]], reduction="none")
    array([0., 0.])
    """
    s = check_real(smooth, "smooth", low=0.0)
    red = check_reduction(reduction)
    t, p = _targets_and_scores(y_true, y_pred, scores_are_probabilities=True)
    w = sample_weights(sample_weight, t.shape[0])
    if t.ndim == 1:
        t, p = t[:, None], p[:, None]
    numerator = 2.0 * np.sum(p * t, axis=1) + s
    denominator = np.sum(p, axis=1) + np.sum(t, axis=1) + s
    empty = denominator == 0  # only with smooth=0 and an all-zero row in both arrays
    ratio = np.divide(numerator, denominator, out=np.ones_like(numerator), where=~empty)
    return reduce_loss(1.0 - ratio, w, red)
