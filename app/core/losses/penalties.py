"""Parameter penalties (regularization) and the penalized total ``L_total = L_data + λ Ω(θ)``.

The definitions follow the project's course notes (shared/seeds/000_*, "Regularización básica"):
L2 (ridge / weight decay) ``Ω(θ) = Σ_j w_j²`` and L1 (lasso) ``Ω(θ) = Σ_j |w_j|``, with no 1/2
factor. Both may be combined (elastic net): ``λ₁ Σ|w_j| + λ₂ Σ w_j²``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike

from app.core._checks import as_float_array
from app.core.losses._base import Float64Array, Reduction, check_real, to_float64
from app.core.losses.registry import compute_loss
from app.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class PenalizedLoss:
    """A data loss, the penalty ``λ Ω(θ)`` added to it, and their sum ``total``."""

    data_loss: float
    penalty: float
    total: float


def _flat_parameters(weights: ArrayLike | Sequence[ArrayLike]) -> Float64Array:
    try:
        flat = np.ravel(np.asarray(weights, dtype=np.float64))
    except (ValueError, TypeError):
        # Layers of different shapes: the penalty is a sum over every entry, so concatenate.
        if isinstance(weights, str | bytes) or not isinstance(weights, Sequence):
            raise InvalidInput("must be an array of numbers", field="weights") from None
        parts = [as_float_array(w, "weights", allow_empty=True).ravel() for w in weights]
        flat = np.concatenate(parts) if parts else np.zeros(0)
    return to_float64(as_float_array(flat, "weights", ndim=1, allow_empty=True))


def penalty(weights: ArrayLike | Sequence[ArrayLike], *, l1: float = 0.0, l2: float = 0.0) -> float:
    """``λ Ω(θ) = l1 * Σ_j |w_j| + l2 * Σ_j w_j²`` over every entry of ``weights``.

    Parameters
    ----------
    weights : array-like of any shape, or a sequence of such arrays
        The parameters ``θ`` to penalize (typically the weights of each layer, biases excluded:
        which ones is the caller's choice). Arrays of different shapes may be passed as a list.
        Empty input has penalty 0.
    l1, l2 : float, default 0.0
        The strengths ``λ``, finite and >= 0.

    Returns
    -------
    float

    Notes
    -----
    No 1/2 factor on L2: an SGD ``weight_decay`` of ``wd`` is the gradient of
    ``(wd / 2) Σ w²``, so it corresponds to ``l2 = wd / 2``. A sum of squares beyond the float64
    range gives ``inf``.

    Raises
    ------
    InvalidInput
        ``l1`` or ``l2`` negative or not finite (field ``l1``/``l2``); non-numeric or non-finite
        ``weights`` (field ``weights``).

    Examples
    --------
    >>> penalty([1.0, -2.0, 3.0], l1=0.1)
    0.6
    >>> penalty([[1.0, -2.0], [3.0]], l1=0.1, l2=0.01)
    0.74
    """
    lam1 = check_real(l1, "l1", low=0.0)
    lam2 = check_real(l2, "l2", low=0.0)
    w = _flat_parameters(weights)
    total = 0.0
    if lam1:
        total += lam1 * float(np.sum(np.abs(w)))
    if lam2:
        with np.errstate(over="ignore"):
            total += lam2 * float(np.sum(np.square(w)))
    return total


def penalized_loss(
    name: str,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    weights: ArrayLike | Sequence[ArrayLike],
    l1: float = 0.0,
    l2: float = 0.0,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    **params: Any,
) -> PenalizedLoss:
    """Compute ``L_total = L_data + λ Ω(θ)`` for the registered loss ``name``.

    ``L_data`` is :func:`~app.core.losses.compute_loss` with ``reduction`` ("mean" or "sum";
    the penalty is added once, so its weight relative to the data term depends on that choice)
    and the penalty is :func:`penalty`.

    Raises
    ------
    InvalidInput
        ``reduction="none"`` (a per-sample loss has no single total), or anything
        :func:`~app.core.losses.compute_loss` and :func:`penalty` reject.

    Examples
    --------
    >>> penalized_loss("mse", [0.0, 1.0], [0.0, 2.0], weights=[3.0, -4.0], l2=0.01)
    PenalizedLoss(data_loss=0.5, penalty=0.25, total=0.75)
    """
    if reduction not in ("mean", "sum"):
        raise InvalidInput(
            f"is {reduction!r}: a penalized loss needs 'mean' or 'sum'", field="reduction"
        )
    omega = penalty(weights, l1=l1, l2=l2)
    # "mean" and "sum" always reduce to a float
    data = cast(
        float,
        compute_loss(
            name, y_true, y_pred, sample_weight=sample_weight, reduction=reduction, **params
        ),
    )
    return PenalizedLoss(data_loss=data, penalty=omega, total=data + omega)
