"""Loss functions of the evaluation engine, exact to PyTorch and scikit-learn.

Every loss is a pure function ``fn(y_true, y_pred, *, sample_weight=None, reduction="mean",
**params)`` on numpy arrays, computed in float64 (float32 input is accepted). With sample weights
``w``, ``"mean"`` is ``Σ w_i l_i / Σ w_i``, ``"sum"`` is ``Σ w_i l_i`` and ``"none"`` returns
``w_i l_i``; elementwise losses on 2-D input weight every element of row ``i`` by ``w_i``.

:data:`LOSSES` describes each loss (tasks, expected input, parameters) and :func:`compute_loss`
evaluates one by name; :func:`penalty` and :func:`penalized_loss` add the regularization term of
``L_total = L_data + λ Ω(θ)``.
"""

from app.core.losses._base import PROBABILITY_EPS, REDUCTIONS, LossValue, Reduction
from app.core.losses.binary import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    dice,
    focal,
)
from app.core.losses.boxes import BOX_FORMATS, BoxFormat, ciou, diou, giou, iou
from app.core.losses.categorical import cross_entropy, kl_div, nll
from app.core.losses.detection import distribution_focal, sigmoid_focal, varifocal
from app.core.losses.margin import hinge, squared_hinge
from app.core.losses.penalties import PenalizedLoss, penalized_loss, penalty
from app.core.losses.registry import (
    LOSSES,
    InputKind,
    LossSpec,
    Task,
    compute_loss,
    get_loss,
)
from app.core.losses.regression import (
    huber,
    log_cosh,
    mae,
    mse,
    poisson_nll,
    quantile,
    rmse,
    smooth_l1,
)
from app.core.losses.segmentation import focal_tversky, jaccard, tversky

__all__ = [
    "BOX_FORMATS",
    "LOSSES",
    "PROBABILITY_EPS",
    "REDUCTIONS",
    "BoxFormat",
    "InputKind",
    "LossSpec",
    "LossValue",
    "PenalizedLoss",
    "Reduction",
    "Task",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "ciou",
    "compute_loss",
    "cross_entropy",
    "dice",
    "diou",
    "distribution_focal",
    "focal",
    "focal_tversky",
    "get_loss",
    "giou",
    "hinge",
    "huber",
    "iou",
    "jaccard",
    "kl_div",
    "log_cosh",
    "mae",
    "mse",
    "nll",
    "penalized_loss",
    "penalty",
    "poisson_nll",
    "quantile",
    "rmse",
    "sigmoid_focal",
    "smooth_l1",
    "squared_hinge",
    "tversky",
    "varifocal",
]
