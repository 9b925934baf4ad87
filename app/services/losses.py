"""Losses of a posted batch, with the optional L1/L2 penalty term."""

from __future__ import annotations

from typing import Any

import numpy as np

from app.api.schemas.evaluations import LossesOptions
from app.core._checks import as_float_array, encode_labels
from app.core.losses import compute_loss, penalty
from app.errors import InvalidInput
from app.services.evaluations import named_params


def loss_targets(y_true: list[Any], labels: list[Any] | None) -> np.ndarray[Any, Any]:
    """Targets as posted, with string class labels mapped to column indices."""
    y = np.asarray(y_true)
    if labels is not None or y.dtype.kind in "UO":
        _, idx = encode_labels(y, labels)
        return idx
    return y


def compute_losses(req: LossesOptions, arrays: dict[str, Any]) -> dict[str, Any]:
    """Every requested loss on one batch; ``arrays`` holds y_true, y_pred, sample_weight."""
    if arrays.get("y_pred") is None:
        raise InvalidInput("y_pred is required", field="y_pred")
    y_true = loss_targets(arrays["y_true"], req.labels)
    y_pred = as_float_array(arrays["y_pred"], "y_pred", ndim=(1, 2, 3, 4))
    weight = arrays.get("sample_weight")
    omega = (
        None
        if req.penalty is None
        else penalty(req.penalty.weights, l1=req.penalty.l1, l2=req.penalty.l2)
    )
    out = []
    for name, params in named_params(req.losses) or []:
        params = dict(params)
        reduction = params.pop("reduction", req.reduction)
        value = compute_loss(
            name, y_true, y_pred, sample_weight=weight, reduction=reduction, **params
        )
        per_sample = reduction == "none"
        out.append(
            {
                "name": name,
                "params": params,
                "reduction": reduction,
                "value": np.asarray(value) if per_sample else float(value),
                "penalty": omega,
                # A total needs one data-loss value; per-sample losses have none.
                "total": None if omega is None or per_sample else float(value) + omega,
            }
        )
    return {"n_samples": int(y_true.shape[0]), "losses": out}
