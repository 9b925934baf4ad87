"""Pure PyTorch training: run specs, the MLP builder, the fit loop and split helpers.

No web, database or queue code: the worker calls :func:`fit` with arrays and persists what the
``on_epoch_end`` hook and the returned :class:`FitResult` hand it.
"""

from app.training.data import group_split, stratified_split
from app.training.loop import (
    EpochRecord,
    FitResult,
    NonFiniteLossError,
    fit,
    load_model,
    predict,
    resolve_device,
)
from app.training.models import MLP, build_loss, build_model, focal_loss_with_logits
from app.training.spec import (
    EarlyStoppingSpec,
    LossSpec,
    ModelSpec,
    OptimizerSpec,
    RegularizationSpec,
    ScheduleSpec,
    TrainingSpec,
)

__all__ = [
    "MLP",
    "EarlyStoppingSpec",
    "EpochRecord",
    "FitResult",
    "LossSpec",
    "ModelSpec",
    "NonFiniteLossError",
    "OptimizerSpec",
    "RegularizationSpec",
    "ScheduleSpec",
    "TrainingSpec",
    "build_loss",
    "build_model",
    "fit",
    "focal_loss_with_logits",
    "group_split",
    "load_model",
    "predict",
    "resolve_device",
    "stratified_split",
]
