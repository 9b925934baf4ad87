"""Multiclass losses on rows of class scores: cross-entropy, negative log-likelihood, KL divergence.

``y_pred`` is ``(n_samples, n_classes)``; the loss is one number per sample (row), so
``reduction="none"`` has shape ``(n_samples,)`` and ``"mean"`` averages over rows.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import log_softmax

from app.core._checks import as_float_array, check_consistent_length, check_probabilities
from app.core.losses._base import (
    PROBABILITY_EPS,
    Float64Array,
    LossValue,
    Reduction,
    check_flag,
    check_real,
    check_reduction,
    class_indices,
    class_weight,
    raise_first,
    reduce_loss,
    sample_weights,
    times,
    to_float64,
)
from app.errors import InvalidInput


def _scores(y_pred: ArrayLike, *, simplex: bool) -> Float64Array:
    s = as_float_array(y_pred, "y_pred", ndim=2)
    if simplex:
        check_probabilities(s, "y_pred", simplex=True)
    return to_float64(s)


def _ndim(values: ArrayLike) -> int:
    try:
        return int(np.ndim(values))
    except ValueError:  # ragged nested lists
        raise InvalidInput("must be a rectangular array", field="y_true") from None


def _distribution_targets(y_true: ArrayLike, shape: tuple[int, ...]) -> Float64Array:
    t = as_float_array(y_true, "y_true", ndim=2)
    check_consistent_length(shape[0], y_true=t)
    if t.shape != shape:
        raise InvalidInput(
            f"has shape {t.shape} but y_pred has shape {shape}: soft targets need one column "
            "per class",
            field="y_true",
        )
    check_probabilities(t, "y_true", simplex=True)
    return to_float64(t)


def _log_probabilities(p: Float64Array) -> Float64Array:
    # Same clip as binary_cross_entropy and sklearn's log_loss (p == 1 needs none: log 1 = 0).
    return np.log(np.clip(p, PROBABILITY_EPS, 1.0))


def cross_entropy(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    from_logits: bool = False,
    weight: ArrayLike | None = None,
    label_smoothing: float = 0.0,
) -> LossValue:
    """Categorical cross-entropy, ``torch.nn.functional.cross_entropy`` (same ``weight`` and
    ``label_smoothing`` semantics).

    With class indices ``y_i``, class weights ``c`` (all 1 by default), smoothing ``ε`` and ``K``
    classes, the loss of row ``i`` is::

        l_i = (1 - ε) * c[y_i] * (-log q_{i,y_i}) + (ε / K) * Σ_k c_k * (-log q_{ik})

    With soft targets ``t`` (rows of probabilities): ``l_i = -Σ_k c_k t'_{ik} log q_{ik}`` with
    ``t' = (1 - ε) t + ε / K``. ``log q`` is ``log_softmax`` of logits, or the log of the
    probabilities clipped below at ``PROBABILITY_EPS``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,) or (n_samples, n_classes)
        Class indices (column numbers of ``y_pred``), or rows of target probabilities.
    y_pred : array-like of shape (n_samples, n_classes)
        Rows of probabilities summing to 1, or logits with ``from_logits=True``.
    sample_weight : array-like of shape (n_samples,), optional
        Multiplies ``l_i``.
    reduction : {"mean", "sum", "none"}
        ``"none"`` returns ``w_i * l_i``, ``"sum"`` their sum. ``"mean"`` with class indices
        divides by ``Σ_i w_i c[y_i]`` (PyTorch's rule: the weighted count of targets); with soft
        targets by ``Σ_i w_i`` (PyTorch divides by the row count there).
    from_logits : bool, default False
    weight : array-like of shape (n_classes,), optional
        Class weights ``c``, >= 0.
    label_smoothing : float, default 0.0
        ``ε``, in [0, 1].

    Raises
    ------
    UndefinedMetricError
        ``"mean"`` with class indices whose weights ``w_i c[y_i]`` sum to zero.

    Notes
    -----
    Without ``weight`` and ``label_smoothing`` the mean equals ``sklearn.metrics.log_loss`` on
    probabilities (same clip), with or without ``sample_weight``.

    Examples
    --------
    >>> cross_entropy([0, 1], [[0.8, 0.2], [0.4, 0.6]], reduction="none")
    array([0.22314, 0.51083])
    >>> cross_entropy([0, 1], [[2.0, 0.0], [0.0, 0.0]], from_logits=True, weight=[1.0, 3.0])
    0.55159
    """
    logits = check_flag(from_logits, "from_logits")
    eps = check_real(label_smoothing, "label_smoothing", low=0.0, high=1.0)
    red = check_reduction(reduction)
    scores = _scores(y_pred, simplex=not logits)
    n, k = scores.shape
    c = class_weight(weight, k)
    w = sample_weights(sample_weight, n)
    # Logits ~1e308 apart overflow x - max(x) and the row sums: a loss of inf is the answer.
    with np.errstate(over="ignore"):
        logq = log_softmax(scores, axis=1) if logits else _log_probabilities(scores)
        weighted_logq = logq if c is None else times(c, logq)
    if _ndim(y_true) == 2:
        t = _distribution_targets(y_true, scores.shape)
        if eps:
            t = (1.0 - eps) * t + eps / k
        with np.errstate(over="ignore"):
            return reduce_loss(-np.sum(times(t, weighted_logq), axis=1), w, red)
    y = class_indices(y_true, n, k)
    loss = -weighted_logq[np.arange(n), y]
    if eps:
        with np.errstate(over="ignore"):
            loss = times(1.0 - eps, loss) - (eps / k) * np.sum(weighted_logq, axis=1)
    return reduce_loss(loss, w, red, norm=None if c is None else c[y])


def nll(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    weight: ArrayLike | None = None,
) -> LossValue:
    """Negative log-likelihood of log-probabilities, ``torch.nn.functional.nll_loss``.

    ``l_i = -c[y_i] * y_pred[i, y_i]``; ``"mean"`` divides by ``Σ_i w_i c[y_i]`` as PyTorch does.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Class indices.
    y_pred : array-like of shape (n_samples, n_classes)
        Log-probabilities (e.g. ``log_softmax`` output), all <= 0. Rows are not checked to
        normalize, as in PyTorch; only the target column is read.
    weight : array-like of shape (n_classes,), optional
        Class weights ``c``, >= 0.

    Raises
    ------
    UndefinedMetricError
        ``"mean"`` when the weights ``w_i c[y_i]`` sum to zero.

    Examples
    --------
    >>> nll([1, 0], [[-0.69315, -0.69315], [-0.10536, -2.30259]])
    0.39926
    """
    red = check_reduction(reduction)
    logp = _scores(y_pred, simplex=False)
    raise_first(logp > 0, logp, "y_pred", "log-probabilities must be <= 0")
    n, k = logp.shape
    c = class_weight(weight, k)
    w = sample_weights(sample_weight, n)
    y = class_indices(y_true, n, k)
    loss = -logp[np.arange(n), y]
    if c is not None:
        loss = loss * c[y]
    return reduce_loss(loss, w, red, norm=None if c is None else c[y])


def kl_div(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> LossValue:
    """Kullback-Leibler divergence ``KL(P || Q) = Σ_k p_k log(p_k / q_k)`` per row.

    Terms with ``p_k = 0`` are 0 (``0 log 0 = 0``); ``q`` is clipped below at
    ``PROBABILITY_EPS``, so ``q_k = 0`` with ``p_k > 0`` costs ``p_k log(p_k / eps)`` instead of
    ``inf`` (consistent with :func:`cross_entropy`, of which this is ``CE(P, Q) - H(P)``).

    Parameters
    ----------
    y_true : array-like of shape (n_samples, n_classes)
        Target distribution ``P``: rows of probabilities summing to 1.
    y_pred : array-like of shape (n_samples, n_classes)
        Predicted distribution ``Q``, likewise.
    reduction : {"mean", "sum", "none"}
        Over rows. Mapping to ``F.kl_div(input=log(Q), target=P)``: our ``"mean"`` is PyTorch's
        ``"batchmean"`` (the divergence averaged over rows, as in scikit-learn's row semantics);
        PyTorch's ``"mean"`` divides by ``N * K`` and is not offered. ``"sum"`` is the same in
        both; our ``"none"`` is PyTorch's ``"none"`` summed over each row.

    Examples
    --------
    >>> kl_div([[0.5, 0.5], [1.0, 0.0]], [[0.5, 0.5], [0.5, 0.5]], reduction="none")
    array([0.     , 0.69315])
    """
    red = check_reduction(reduction)
    q = _scores(y_pred, simplex=True)
    p = _distribution_targets(y_true, q.shape)
    w = sample_weights(sample_weight, q.shape[0])
    positive = p > 0
    ratio = np.divide(p, np.clip(q, PROBABILITY_EPS, 1.0), out=np.ones_like(p), where=positive)
    loss = np.sum(np.where(positive, p * np.log(ratio), 0.0), axis=1)
    return reduce_loss(loss, w, red)
