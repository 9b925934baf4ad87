"""The loss registry: name -> function, tasks, input kind, parameters; and :func:`compute_loss`.

The web layer lists :data:`LOSSES` to document what a client may ask for and calls
:func:`compute_loss`, which rejects unknown names and parameters before any arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, TypeAlias

from numpy.typing import ArrayLike

from app.core.losses._base import REDUCTIONS, LossValue, Reduction
from app.core.losses.binary import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    dice,
    focal,
)
from app.core.losses.boxes import ciou, diou, giou, iou
from app.core.losses.categorical import cross_entropy, kl_div, nll
from app.core.losses.detection import distribution_focal, sigmoid_focal, varifocal
from app.core.losses.margin import hinge, squared_hinge
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
from app.errors import InvalidInput

Task: TypeAlias = Literal[
    "binary", "multiclass", "multilabel", "regression", "detection", "segmentation"
]
#: What ``y_pred`` must hold (under the default parameters; ``from_logits=True`` switches a
#: "probability" loss to logits and ``from_logits=False`` a "logit" loss to probabilities,
#: ``log_input=False`` a "log_rate" loss to rates). "box": boxes of shape (n, 4) in
#: ``box_format``.
InputKind: TypeAlias = Literal[
    "value", "log_rate", "probability", "logit", "decision", "log_probability", "box"
]
ParamDefault: TypeAlias = float | bool | str | None
LossFn: TypeAlias = Callable[..., LossValue]


@dataclass(frozen=True, slots=True)
class LossSpec:
    """One registered loss.

    Attributes
    ----------
    name : str
        The registry key.
    fn : callable
        ``fn(y_true, y_pred, *, sample_weight=None, reduction="mean", **params)``.
    tasks : frozenset of str
        Among "binary", "multiclass", "multilabel", "regression", "detection", "segmentation".
    input : str
        What ``y_pred`` holds by default (see :data:`InputKind`).
    params : mapping of str to default
        The keyword parameters the loss accepts, with their defaults (read-only).
    summary : str
        One line for listings.
    reductions : tuple of str
        The reductions the loss supports (``rmse`` has only "mean").
    """

    name: str
    fn: LossFn
    tasks: frozenset[Task]
    input: InputKind
    params: Mapping[str, ParamDefault]
    summary: str
    reductions: tuple[Reduction, ...] = field(default=REDUCTIONS)


def _spec(
    fn: LossFn,
    tasks: tuple[Task, ...],
    input: InputKind,
    summary: str,
    reductions: tuple[Reduction, ...] = REDUCTIONS,
    **params: ParamDefault,
) -> LossSpec:
    return LossSpec(
        name=fn.__name__,
        fn=fn,
        tasks=frozenset(tasks),
        input=input,
        params=MappingProxyType(params),
        summary=summary,
        reductions=reductions,
    )


_REG: Final[tuple[Task, ...]] = ("regression",)
_BIN: Final[tuple[Task, ...]] = ("binary", "multilabel")
_CLS: Final[tuple[Task, ...]] = ("binary", "multiclass")
_DET: Final[tuple[Task, ...]] = ("detection",)
_SEG: Final[tuple[Task, ...]] = ("segmentation",)

LOSSES: Final[Mapping[str, LossSpec]] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            _spec(mse, _REG, "value", "Mean squared error."),
            _spec(mae, _REG, "value", "Mean absolute error (L1)."),
            _spec(rmse, _REG, "value", "Root mean squared error.", ("mean",)),
            _spec(huber, _REG, "value", "Huber loss: quadratic within delta, then linear.",
                  delta=1.0),
            _spec(smooth_l1, _REG, "value", "Smooth L1: Huber divided by beta.", beta=1.0),
            _spec(log_cosh, _REG, "value", "Log-cosh of the residual (smooth, robust)."),
            _spec(quantile, _REG, "value", "Pinball loss of the q-th quantile.", q=0.5),
            _spec(poisson_nll, _REG, "log_rate", "Poisson negative log-likelihood.",
                  log_input=True, full=False, eps=1e-8),
            _spec(binary_cross_entropy, _BIN, "probability",
                  "Binary cross-entropy (log loss) of probabilities."),
            _spec(binary_cross_entropy_with_logits, _BIN, "logit",
                  "Binary cross-entropy of logits, numerically stable.", pos_weight=None),
            _spec(focal, _BIN, "probability", "Binary focal loss (Lin et al. 2017).",
                  gamma=2.0, alpha=0.25, from_logits=False),
            _spec(dice, _BIN, "probability", "Soft dice loss per sample.", smooth=1.0),
            _spec(cross_entropy, _CLS, "probability",
                  "Categorical cross-entropy with class weights and label smoothing.",
                  from_logits=False, weight=None, label_smoothing=0.0),
            _spec(nll, _CLS, "log_probability",
                  "Negative log-likelihood of log-probabilities.", weight=None),
            _spec(hinge, _CLS, "decision", "Hinge loss (Crammer-Singer for multiclass)."),
            _spec(squared_hinge, _CLS, "decision", "Squared hinge loss (L2-SVM)."),
            _spec(kl_div, ("multiclass",), "probability",
                  "KL divergence of predicted from target distributions."),
            _spec(iou, _DET, "box", "IoU loss 1 - IoU of paired boxes (torchvision box_iou).",
                  box_format="xyxy", eps=0.0),
            _spec(giou, _DET, "box", "Generalized IoU loss (torchvision.ops).",
                  box_format="xyxy", eps=1e-7),
            _spec(diou, _DET, "box", "Distance IoU loss (torchvision.ops).",
                  box_format="xyxy", eps=1e-7),
            _spec(ciou, _DET, "box", "Complete IoU loss (torchvision.ops).",
                  box_format="xyxy", eps=1e-7),
            _spec(sigmoid_focal, _DET, "logit",
                  "Sigmoid focal loss on logits (torchvision.ops.sigmoid_focal_loss).",
                  alpha=0.25, gamma=2.0),
            _spec(varifocal, _DET, "logit", "Varifocal loss on IoU-aware targets (VarifocalNet).",
                  alpha=0.75, gamma=2.0, iou_weighted=True, from_logits=True),
            _spec(distribution_focal, _DET, "logit",
                  "Distribution focal loss over box-distance bins (GFL)."),
            _spec(tversky, _SEG, "probability", "Tversky loss of soft masks.",
                  alpha=0.3, beta=0.7, smooth=1.0),
            _spec(focal_tversky, _SEG, "probability", "Focal Tversky loss of soft masks.",
                  alpha=0.3, beta=0.7, gamma=0.75, smooth=1.0),
            _spec(jaccard, _SEG, "probability", "Soft Jaccard (IoU) loss of masks.", smooth=1.0),
        )
    }
)  # fmt: skip


def get_loss(name: str) -> LossSpec:
    """The registered loss ``name``, or InvalidInput (field ``losses``) listing the known ones."""
    spec = LOSSES.get(name) if isinstance(name, str) else None
    if spec is None:
        raise InvalidInput(
            f"unknown loss {name!r}; known losses: {', '.join(sorted(LOSSES))}", field="losses"
        )
    return spec


def compute_loss(
    name: str,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    **params: Any,
) -> LossValue:
    """Evaluate the registered loss ``name`` on one batch.

    Parameters
    ----------
    name : str
        A key of :data:`LOSSES`.
    y_true, y_pred, sample_weight, reduction
        As the loss function takes them.
    **params
        Keyword parameters of the loss; only those in ``LOSSES[name].params`` are allowed.

    Returns
    -------
    float or ndarray of float64

    Raises
    ------
    InvalidInput
        Unknown ``name`` (field ``losses``), unknown parameter (field: the parameter), or any
        invalid value, each naming its field (``y_true``, ``y_pred``, ``sample_weight``,
        ``reduction`` or the parameter).
    UndefinedMetricError
        A weighted mean whose denominator is zero.

    Examples
    --------
    >>> compute_loss("huber", [0.0, 0.0], [0.5, 3.0], delta=1.0)
    1.3125
    >>> compute_loss("mse", [0.0], [1.0], delta=1.0)
    Traceback (most recent call last):
    ...
    app.errors.InvalidInput: delta: unknown parameter 'delta' for loss 'mse'; it takes none
    """
    spec = get_loss(name)
    for key in params:
        if key not in spec.params:
            allowed = f"only: {', '.join(spec.params)}" if spec.params else "none"
            raise InvalidInput(
                f"unknown parameter {key!r} for loss {name!r}; it takes {allowed}", field=key
            )
    return spec.fn(y_true, y_pred, sample_weight=sample_weight, reduction=reduction, **params)
