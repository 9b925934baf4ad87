"""Regression losses: elementwise functions of the residual ``y_pred - y_true``.

Inputs are ``(n_samples,)`` or ``(n_samples, n_outputs)``; losses are per element (like PyTorch's
``reduction="none"``), sample weights broadcast over outputs, and ``"mean"`` is the weighted mean
over all elements. Finite inputs whose loss exceeds the float64 range give ``inf``, not an error.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from app.core.losses._base import (
    Float64Array,
    LossValue,
    Reduction,
    check_flag,
    check_real,
    check_reduction,
    paired_arrays,
    raise_first,
    reduce_loss,
    sample_weights,
)

_LOG2 = math.log(2.0)


def _prepare(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    sample_weight: ArrayLike | None,
    reduction: object,
    allowed: tuple[Reduction, ...] = ("mean", "sum", "none"),
) -> tuple[Float64Array, Float64Array, Float64Array | None, Reduction]:
    red = check_reduction(reduction, allowed)
    t, p = paired_arrays(y_true, y_pred)
    return t, p, sample_weights(sample_weight, t.shape[0]), red


def _residual(t: Float64Array, p: Float64Array) -> Float64Array:
    # Finite inputs near ±1.8e308 can overflow the difference; inf is the honest answer.
    with np.errstate(over="ignore"):
        return p - t


def mse(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> LossValue:
    """Squared error ``(y_pred - y_true)**2``; the mean is ``torch.nn.functional.mse_loss``.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,) or (n_samples, n_outputs)
    sample_weight : array-like of shape (n_samples,), optional
    reduction : {"mean", "sum", "none"}
        ``"none"`` returns the weighted per-element losses, shape of ``y_true``.

    Returns
    -------
    float or ndarray
        The mean equals ``sklearn.metrics.mean_squared_error`` (its uniform average over
        outputs has the same denominators).

    Examples
    --------
    >>> mse([0.0, 1.0, 2.0], [0.0, 1.0, 4.0])
    1.3333
    >>> mse([0.0, 1.0], [1.0, 3.0], reduction="none")
    array([1., 4.])
    """
    t, p, w, red = _prepare(y_true, y_pred, sample_weight, reduction)
    with np.errstate(over="ignore"):
        loss = np.square(_residual(t, p))
    return reduce_loss(loss, w, red)


def mae(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> LossValue:
    """Absolute error ``|y_pred - y_true|``; the mean is ``torch.nn.functional.l1_loss``.

    Shapes and reductions as in :func:`mse`; the mean equals
    ``sklearn.metrics.mean_absolute_error``.

    Examples
    --------
    >>> mae([0.0, 1.0, 2.0], [0.5, 1.0, 4.0])
    0.8333
    """
    t, p, w, red = _prepare(y_true, y_pred, sample_weight, reduction)
    return reduce_loss(np.abs(_residual(t, p)), w, red)


def rmse(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> LossValue:
    """Root mean squared error ``sqrt(sum(w_i * e_i**2) / sum(w_i))``.

    Only ``reduction="mean"`` exists: a root of a per-sample or summed loss is not an RMSE.

    For 2-D input this is the root of the mean over *all* elements (``sqrt(F.mse_loss)``), not
    scikit-learn's default ``root_mean_squared_error``, which averages per-output RMSEs; in 1-D
    they agree.

    Raises
    ------
    InvalidInput
        ``reduction`` other than ``"mean"`` (field ``reduction``).

    Examples
    --------
    >>> rmse([0.0, 0.0], [3.0, 4.0])
    3.5355
    """
    t, p, w, red = _prepare(y_true, y_pred, sample_weight, reduction, allowed=("mean",))
    with np.errstate(over="ignore"):
        loss = np.square(_residual(t, p))
    return math.sqrt(float(reduce_loss(loss, w, red)))


def huber(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    delta: float = 1.0,
) -> LossValue:
    """Huber loss, ``torch.nn.functional.huber_loss``.

    ``0.5 * e**2`` if ``|e| < delta`` else ``delta * (|e| - 0.5 * delta)``, with
    ``e = y_pred - y_true``. Quadratic near zero, linear (robust to outliers) beyond ``delta``.

    Parameters
    ----------
    delta : float, default 1.0
        Where the loss turns linear; must be > 0.

    Examples
    --------
    >>> huber([0.0, 0.0], [0.5, 3.0], reduction="none")
    array([0.125, 2.5  ])
    """
    d = check_real(delta, "delta", low=0.0, low_open=True)
    t, p, w, red = _prepare(y_true, y_pred, sample_weight, reduction)
    a = np.abs(_residual(t, p))
    with np.errstate(over="ignore"):
        loss = np.where(a < d, 0.5 * np.square(np.minimum(a, d)), d * (a - 0.5 * d))
    return reduce_loss(loss, w, red)


def smooth_l1(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    beta: float = 1.0,
) -> LossValue:
    """Smooth L1 loss, ``torch.nn.functional.smooth_l1_loss``.

    ``0.5 * e**2 / beta`` if ``|e| < beta`` else ``|e| - 0.5 * beta``; equals
    ``huber(delta=beta) / beta``. ``beta=0`` is plain :func:`mae`, as in PyTorch.

    Parameters
    ----------
    beta : float, default 1.0
        Must be >= 0.

    Examples
    --------
    >>> smooth_l1([0.0, 0.0], [0.5, 3.0], reduction="none", beta=2.0)
    array([0.0625, 2.    ])
    """
    b = check_real(beta, "beta", low=0.0)
    t, p, w, red = _prepare(y_true, y_pred, sample_weight, reduction)
    a = np.abs(_residual(t, p))
    if b == 0.0:
        return reduce_loss(a, w, red)
    with np.errstate(over="ignore"):
        loss = np.where(a < b, 0.5 * np.square(np.minimum(a, b)) / b, a - 0.5 * b)
    return reduce_loss(loss, w, red)


def log_cosh(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> LossValue:
    """Log-cosh loss ``log(cosh(e))``, ~``e**2 / 2`` near zero and ~``|e| - log 2`` far out.

    ``cosh`` overflows float64 for ``|e| > 710``, so for ``|e| >= 1`` it is computed as
    ``|e| + log1p(exp(-2|e|)) - log 2`` (finite for every finite ``e``). That form cancels near
    zero, so for ``|e| < 1`` it is ``log1p(2 sinh(e/2)**2)`` (``cosh e - 1 = 2 sinh²(e/2)``),
    which keeps full relative precision down to subnormal residuals.

    Examples
    --------
    >>> log_cosh([0.0], [1.0])
    0.43378
    >>> log_cosh([0.0], [1000.0])  # 1000 - log 2
    999.30685
    """
    t, p, w, red = _prepare(y_true, y_pred, sample_weight, reduction)
    a = np.abs(_residual(t, p))
    small = a < 1.0
    near = np.log1p(2.0 * np.square(np.sinh(0.5 * np.where(small, a, 0.0))))
    far = a + np.log1p(np.exp(-2.0 * a)) - _LOG2
    return reduce_loss(np.where(small, near, far), w, red)


def quantile(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    q: float = 0.5,
) -> LossValue:
    """Pinball (quantile) loss, ``q * max(y - f, 0) + (1 - q) * max(f - y, 0)``.

    The mean equals ``sklearn.metrics.mean_pinball_loss(alpha=q)``; ``q=0.5`` is half the MAE.

    Parameters
    ----------
    q : float, default 0.5
        The target quantile, in the open interval (0, 1).

    Examples
    --------
    >>> quantile([1.0, 1.0], [0.0, 2.0], q=0.9, reduction="none")
    array([0.9, 0.1])
    """
    qq = check_real(q, "q", low=0.0, high=1.0, low_open=True, high_open=True)
    t, p, w, red = _prepare(y_true, y_pred, sample_weight, reduction)
    with np.errstate(over="ignore"):
        diff = t - p
    loss = np.where(diff >= 0, qq * diff, (qq - 1.0) * diff)
    return reduce_loss(loss, w, red)


def poisson_nll(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    log_input: bool = True,
    full: bool = False,
    eps: float = 1e-8,
) -> LossValue:
    """Poisson negative log-likelihood, ``torch.nn.functional.poisson_nll_loss``.

    With ``log_input`` (``y_pred`` is the log-rate ``f``): ``exp(f) - y * f``; otherwise
    (``y_pred`` is the rate ``λ >= 0``): ``λ - y * log(λ + eps)``. With ``full``, Stirling's term
    ``y*log(y) - y + 0.5*log(2πy)`` is added where ``y > 1`` (0 elsewhere), as in PyTorch.

    Without ``full`` the constant ``log(y!)`` is dropped, so the loss can be negative. This is not
    ``sklearn.metrics.mean_poisson_deviance`` (a deviance, zero at ``λ = y``).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,) or (n_samples, n_outputs)
        Counts (or rates), >= 0.
    log_input : bool, default True
    full : bool, default False
    eps : float, default 1e-8
        Keeps ``log(λ + eps)`` finite at ``λ = 0``; must be > 0. Unused with ``log_input``.

    Notes
    -----
    ``exp(f)`` overflows float64 for ``f > 709.78``; such rows give ``inf``.

    Examples
    --------
    >>> poisson_nll([2.0], [0.0])
    1.0
    >>> poisson_nll([2.0], [2.0], log_input=False)
    0.61371
    """
    use_log = check_flag(log_input, "log_input")
    use_full = check_flag(full, "full")
    e = check_real(eps, "eps", low=0.0, low_open=True)
    t, p, w, red = _prepare(y_true, y_pred, sample_weight, reduction)
    raise_first(t < 0, t, "y_true", "counts must be >= 0")
    if use_log:
        with np.errstate(over="ignore"):
            loss = np.exp(p) - t * p
    else:
        raise_first(p < 0, p, "y_pred", "rates must be >= 0 (log_input=false)")
        loss = p - t * np.log(p + e)
    if use_full:
        big = t > 1
        safe = np.where(big, t, 1.0)
        stirling = safe * np.log(safe) - safe + 0.5 * np.log(2.0 * math.pi * safe)
        loss = loss + np.where(big, stirling, 0.0)
    return reduce_loss(loss, w, red)
