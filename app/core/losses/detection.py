"""Classification losses of dense object detectors: sigmoid focal, varifocal, distribution focal.

``sigmoid_focal`` and ``varifocal`` score every anchor (or point) and class independently: inputs
of shape ``(n_anchors,)`` or ``(n_anchors, n_classes)``, losses per element, as torchvision and
mmdetection compute them before their reductions. ``distribution_focal`` scores one discretized
box-side distance per row (or ``k`` sides per box) over ``n_bins`` logits.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit, log_softmax

from app.core._checks import as_float_array, check_consistent_length
from app.core.losses._base import (
    Float64Array,
    LossValue,
    Reduction,
    check_flag,
    check_real,
    check_reduction,
    raise_first,
    reduce_loss,
    sample_weights,
    times,
    to_float64,
)
from app.core.losses.binary import (
    _bce_logits,
    _bce_probabilities,
    _targets_and_scores,
    focal,
)
from app.errors import InvalidInput


def sigmoid_focal(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    alpha: float = 0.25,
    gamma: float = 2.0,
) -> LossValue:
    """Focal loss on logits (Lin et al. 2017), ``torchvision.ops.sigmoid_focal_loss``.

    ``α_t (1 - p_t)^γ BCE(y, x)`` per element, with ``p = σ(x)``, ``p_t = p y + (1 - p)(1 - y)``,
    ``α_t = α y + (1 - α)(1 - y)`` and ``BCE(y, x) = -(y log p + (1 - y) log(1 - p))`` computed
    stably from the logit. ``"mean"`` averages over every element, as torchvision's
    ``loss.mean()``. The same numbers as :func:`focal` with ``from_logits=True``, under
    torchvision's name and parameter conventions.

    Parameters
    ----------
    y_true : array-like of shape (n_anchors,) or (n_anchors, n_classes)
        Targets in [0, 1] (one-hot class targets; soft targets are accepted as by torchvision).
    y_pred : array-like of the same shape
        Logits.
    alpha : float, default 0.25
        Weight of the positive class, at most 1. A negative value (torchvision's ``-1``) turns the
        ``α_t`` weighting off.
    gamma : float, default 2.0
        Focusing exponent, >= 0.

    Examples
    --------
    >>> sigmoid_focal([1, 0], [0.0, 0.0], reduction="none")  # 0.25 * 0.25 * log 2, 0.75 * ...
    array([0.04332, 0.12997])
    >>> sigmoid_focal([1.0], [0.0], alpha=-1, gamma=0.0)  # plain BCE
    0.69315
    """
    a = check_real(alpha, "alpha", high=1.0)
    return focal(
        y_true,
        y_pred,
        sample_weight=sample_weight,
        reduction=reduction,
        gamma=gamma,
        alpha=None if a < 0 else a,
        from_logits=True,
    )


def varifocal(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    alpha: float = 0.75,
    gamma: float = 2.0,
    iou_weighted: bool = True,
    from_logits: bool = True,
) -> LossValue:
    """Varifocal loss (VarifocalNet, Zhang et al. 2021), as mmdetection's ``varifocal_loss``.

    With ``q`` the IoU-aware target (the IoU of the predicted box with its ground truth for the
    ground-truth class, 0 elsewhere) and ``p`` the predicted IoU-aware classification score, per
    element::

        VFL(p, q) = -q (q log p + (1 - q) log(1 - p))    if q > 0
                  = -α p^γ log(1 - p)                    if q = 0

    i.e. the binary cross-entropy with soft target ``q``, weighted by ``q`` on positives (only
    negatives are down-weighted, by ``α p^γ``). With ``iou_weighted=False`` the weight on
    positives is 1 instead of ``q``. In mmdetection's form, ``BCE(q, p) · w`` with
    ``w = q [q > 0] + α |p - q|^γ [q ≤ 0]``.

    Parameters
    ----------
    y_true : array-like of shape (n_anchors,) or (n_anchors, n_classes)
        IoU-aware targets ``q`` in [0, 1].
    y_pred : array-like of the same shape
        Logits (``p = σ(x)``, log-probabilities computed stably from ``x``), or probabilities
        ``p`` in [0, 1] with ``from_logits=False`` (clipped to ``[eps, 1 - eps]`` inside the
        logs, ``eps`` = float64 machine epsilon, as :func:`binary_cross_entropy`).
    alpha : float, default 0.75
        Weight of the negatives, >= 0.
    gamma : float, default 2.0
        Focusing exponent of the negatives, >= 0.
    iou_weighted : bool, default True
        Weight positives by ``q`` (the paper); False weights them by 1.
    from_logits : bool, default True
        Detection heads output logits, as mmdetection's implementation takes them.

    Examples
    --------
    >>> varifocal([0.8, 0.0], [0.6, 0.3], from_logits=False, reduction="none")
    array([0.47353, 0.02408])
    """
    a = check_real(alpha, "alpha", low=0.0)
    g = check_real(gamma, "gamma", low=0.0)
    weighted = check_flag(iou_weighted, "iou_weighted")
    logits = check_flag(from_logits, "from_logits")
    red = check_reduction(reduction)
    q, s = _targets_and_scores(y_true, y_pred, scores_are_probabilities=not logits)
    w = sample_weights(sample_weight, q.shape[0])
    if logits:
        ce, p = _bce_logits(q, s, 1.0), expit(s)
    else:
        ce, p = _bce_probabilities(q, s), s
    positive = q > 0
    weight = np.where(positive, q if weighted else 1.0, a * np.abs(p - q) ** g)
    return reduce_loss(times(weight, ce), w, red)


def distribution_focal(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> LossValue:
    """Distribution focal loss (Generalized Focal Loss, Li et al. 2020), as in GFL/mmdetection.

    A box side's distance is regressed as a distribution over the ``n_bins`` integer bins
    ``0 .. n_bins - 1``, ``S = softmax(logits)``. A continuous target ``y`` lies between the bins
    ``y_i = ⌊y⌋`` and ``y_{i+1} = y_i + 1``, and the loss is the cross-entropy on those two bins,
    each weighted by the target's distance to the other::

        DFL(S, y) = -((y_{i+1} - y) log S_i + (y - y_i) log S_{i+1})

    It is smallest when ``S_i = y_{i+1} - y`` and ``S_{i+1} = y - y_i``, whose expectation is
    ``y``. At the last bin, ``y = n_bins - 1``, ``i = n_bins - 2`` and the loss is
    ``-log S_{n_bins-1}`` (GFL's code would index past the bins there; its callers clip ``y``
    below ``n_bins - 1``).

    Parameters
    ----------
    y_true : array-like of shape (n,) or (n, k)
        Targets in ``[0, n_bins - 1]``, in bin units (e.g. ``k = 4`` sides of ``n`` boxes).
    y_pred : array-like of shape (n, n_bins) or (n, k, n_bins)
        Logits of the bins, ``n_bins >= 2``.
    sample_weight : array-like of shape (n,), optional
        Per row (box); GFL weights each box by its predicted IoU score this way.
    reduction : {"mean", "sum", "none"}
        Per target; ``"none"`` gives shape ``y_true.shape``, ``"mean"`` averages over all targets.

    Examples
    --------
    >>> distribution_focal([1.3], [[0.0, 0.0, 0.0, 0.0]])  # log 4, whatever y
    1.38629
    >>> distribution_focal([2.0, 1.25], [[0.0, 0.0, 9.0], [0.0, 2.0, 0.0]], reduction="none")
    array([2.46789e-04, 7.39545e-01])
    """
    red = check_reduction(reduction)
    y = to_float64(as_float_array(y_true, "y_true", ndim=(1, 2)))
    x = to_float64(as_float_array(y_pred, "y_pred", ndim=(2, 3)))
    check_consistent_length(y.shape[0], y_pred=x)
    if x.shape[:-1] != y.shape:
        raise InvalidInput(
            f"has shape {x.shape} but y_true has shape {y.shape}: y_pred must have shape "
            "y_true.shape + (n_bins,)",
            field="y_pred",
        )
    n_bins = x.shape[-1]
    if n_bins < 2:
        raise InvalidInput(f"has {n_bins} bin: a distribution needs at least 2", field="y_pred")
    raise_first(
        (y < 0) | (y > n_bins - 1),
        y,
        "y_true",
        f"targets must lie in [0, {n_bins - 1}] (the bins of y_pred's {n_bins} logits)",
    )
    w = sample_weights(sample_weight, y.shape[0])
    left = np.minimum(np.floor(y), n_bins - 2).astype(np.intp)
    weight_left = (left + 1) - y
    weight_right = y - left
    with np.errstate(over="ignore"):
        log_s = log_softmax(x, axis=-1)
    log_left = np.take_along_axis(log_s, left[..., None], axis=-1)[..., 0]
    log_right = np.take_along_axis(log_s, left[..., None] + 1, axis=-1)[..., 0]
    loss: Float64Array = -(times(weight_left, log_left) + times(weight_right, log_right))
    return reduce_loss(loss, w, red)
