"""Requests and responses of /v1/evaluations and /v1/losses."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from app.api.schemas.common import (
    Label,
    Name,
    Page,
    ParamSpec,
    Reduction,
    ScoreType,
    StoreOptions,
    StrictModel,
)

CurveName = Literal["roc", "pr", "reliability"]
#: The tasks of /v1/evaluations: the classification and regression tasks, and masks.
EvaluationTask = Literal["binary", "multiclass", "multilabel", "regression", "segmentation"]
#: What a stored report can be: the tasks above plus detection (POST /v1/detection-evaluations).
StoredTask = Literal[EvaluationTask, "detection"]
#: Most classes of a segmentation report (its confusion matrix has num_classes² cells).
MAX_SEGMENTATION_CLASSES = 1024
Scores = list[float] | list[list[float]]
#: Loss inputs may be boxes (n, 4), distributions (n, k, bins) or masks (N, [C,] H, W).
Tensor = Scores | list[list[list[float]]] | list[list[list[list[float]]]]


class PenaltySpec(StrictModel):
    """L_total = L_data + λ₁‖θ‖₁ + λ₂‖θ‖₂² on a posted parameter vector θ."""

    weights: list[float] = Field(min_length=1, description="The model parameters θ, flattened.")
    l1: float = Field(0.0, ge=0, description="λ for the L1 penalty.")
    l2: float = Field(0.0, ge=0, description="λ for the L2 penalty.")


class BatchArrays(StrictModel):
    """The arrays of a batch. Regression and segmentation post ``y_pred``; classification posts
    ``y_score``."""

    y_true: list[Any] = Field(
        min_length=1,
        description="Labels (ints or strings), 0/1 rows for multilabel, regression targets, or "
        "segmentation masks (N, H, W) of class ids.",
        examples=[[0, 1, 1, 0]],
    )
    y_score: Scores | None = Field(
        None,
        description="Probabilities or logits: (n,) for binary, (n, K) multiclass, (n, L) "
        "multilabel.",
        examples=[[0.1, 0.8, 0.65, 0.3]],
    )
    y_pred: Tensor | None = Field(
        None,
        description="Regression predictions, (n,) or (n, D); segmentation: class ids (N, H, W) "
        "or class scores (N, C, H, W).",
    )
    sample_weight: list[float] | None = Field(None, description="Non-negative, one per row.")


class BootstrapSpec(StrictModel):
    """Percentile bootstrap intervals (multinomial resampling of rows, seeded)."""

    n: int = Field(1000, ge=10, le=100_000, description="Resamples.")
    confidence: float = Field(0.95, gt=0, lt=1, description="Interval coverage.")
    seed: int = Field(0, ge=0, description="Seed: the same request gives the same intervals.")
    metrics: list[str | ParamSpec] | None = Field(
        None,
        description="Metrics to bound; default: the report's metrics that resample in "
        "vectorized form.",
    )


class EvaluationOptions(StoreOptions):
    task: EvaluationTask = Field(description="What kind of prediction the batch holds.")
    score_type: ScoreType = Field("probability", description="How to read y_score.")
    labels: list[Label] | None = Field(
        None,
        description="Class labels in column order (multiclass/multilabel) or [negative, "
        "positive] (binary); segmentation: a name per class id 0..num_classes-1.",
    )
    pos_label: Label | None = Field(None, description="The positive class (binary).")
    threshold: float | None = Field(
        None,
        description="Decision threshold on y_score for binary/multilabel predictions "
        "(default 0.5 for probabilities, 0 for logits).",
    )
    metrics: list[str | ParamSpec] | None = Field(
        None,
        description="Metric names, or {name, ...params}; default: all for the task.",
        examples=[["roc_auc", "f1", {"name": "fbeta", "beta": 2}]],
    )
    losses: list[str | ParamSpec] | None = Field(
        None, description="Loss names, or {name, ...params}; default: the task's usual losses."
    )
    penalty: PenaltySpec | None = None
    curves: bool | list[CurveName] = Field(False, description="Curves to include (true: all).")
    max_curve_points: int | None = Field(
        None, ge=2, le=100_000, description="Most points per curve (exact areas are kept)."
    )
    n_bins: int = Field(15, ge=1, le=10_000, description="Bins for ECE/MCE and reliability.")
    binning: Literal["uniform", "quantile"] = Field(
        "uniform", description="Equal-width or equal-mass calibration bins."
    )
    groups: dict[Name, list[Label]] | None = Field(
        None,
        description="Slices: column name -> a group label per row (Arrow: columns "
        "group_<name>). Metrics, ECE and confusion per group, weighted mean, worst group.",
        examples=[{"region": ["eu", "us", "eu", "us"]}],
    )
    ids: list[Label] | None = Field(
        None, description="Row ids for error analysis (Arrow: column id)."
    )
    top_errors: int | None = Field(
        None, ge=1, le=10_000, description="List the k most confident wrong predictions."
    )
    bootstrap: BootstrapSpec | None = None
    num_classes: int | None = Field(
        None,
        ge=1,
        le=MAX_SEGMENTATION_CLASSES,
        description="Segmentation: the number of classes C; class ids lie in [0, C).",
        examples=[20],
    )
    ignore_index: int | None = Field(
        None,
        description="Segmentation: pixels whose true id is this value are left out of every "
        "count (often 255 or -1).",
        examples=[255],
    )


class EvaluationRequest(EvaluationOptions, BatchArrays):
    """A batch and what to compute on it."""

    @model_validator(mode="after")
    def _scores_for_task(self) -> EvaluationRequest:
        want = "y_pred" if self.task in ("regression", "segmentation") else "y_score"
        if getattr(self, want) is None:
            raise ValueError(f"{want} is required for task {self.task!r}")
        return self


class LossesOptions(StrictModel):
    labels: list[Label] | None = Field(
        None, description="Class labels in column order, to map string targets to indices."
    )
    losses: list[str | ParamSpec] = Field(
        min_length=1,
        description="Loss names, or {name, reduction?, ...params}.",
        examples=[["mse", {"name": "huber", "delta": 0.5}]],
    )
    reduction: Reduction = Field("mean", description="Default reduction for every loss.")
    penalty: PenaltySpec | None = None


class LossesRequest(LossesOptions, BatchArrays):
    """A batch and the losses to compute on it. ``y_pred`` holds the model output the loss
    takes (values, probabilities, logits or log-probabilities, as each loss documents)."""

    y_pred: Tensor = Field(
        description="Model outputs: (n,), (n, K), boxes (n, 4), masks (N, [C,] H, W)."
    )
    y_score: None = Field(None, exclude=True)


class LossValue(BaseModel):
    name: str
    params: dict[str, Any]
    reduction: Reduction
    value: float | list[float] = Field(description="The data loss.")
    penalty: float | None = Field(None, description="λΩ(θ), when a penalty was posted.")
    total: float | None = Field(None, description="data loss + penalty (mean/sum reductions).")


class LossesResponse(BaseModel):
    n_samples: int
    losses: list[LossValue]


class EvaluationRead(BaseModel):
    """A report; ``id`` and ``created_at`` are set when it was stored."""

    id: str | None = None
    created_at: datetime | None = None
    task: StoredTask
    n_samples: int = Field(description="Rows evaluated; for segmentation, pixels (N·H·W).")
    name: str | None = None
    model: str | None = None
    tags: list[str] = Field(default_factory=list)
    metrics: dict[str, float | None]
    losses: dict[str, Any] = Field(default_factory=dict)
    confusion_matrix: dict[str, Any] | None = None
    per_class: list[dict[str, Any]] | None = None
    curves: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None
    segmentation: dict[str, Any] | None = Field(
        None,
        description="Segmentation: num_classes, ignore_index, n_images, mask_shape, prediction "
        "(class_ids | scores), n_pixels (counted) and n_ignored.",
    )
    warnings: list[dict[str, str]] = Field(default_factory=list)


class EvaluationSummary(BaseModel):
    id: str
    created_at: datetime
    task: StoredTask
    n_samples: int
    name: str | None
    model: str | None
    tags: list[str]
    headline: dict[str, float | None]


class EvaluationList(BaseModel):
    items: list[EvaluationSummary]
    page: Page
