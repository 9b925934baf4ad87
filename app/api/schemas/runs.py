"""Request and response models of /v1/runs and /v1/datasets.

The training options mirror :class:`app.training.TrainingSpec` field for field; pydantic checks
types and unknown options, and the spec's own checks (ranges, options that do not apply to the
chosen loss or optimizer) run when the service builds the spec, naming the same dotted field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.api.schemas.common import MAX_TAGS, Name, Page, StrictModel, Tag
from app.api.schemas.images import Array, CNNFields

RunTask = Literal["binary", "multiclass", "regression"]
RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]

MetricName = Name  # 1..200 characters, no control characters


class DataSpec(StrictModel):
    """The training data: inline rows, or an uploaded dataset."""

    X: Array | None = Field(
        None,
        description="Feature rows (inline data); for a cnn, images N×C×H×W or N×H×W.",
        examples=[[[0.1, 2.0], [0.3, -1.0]]],
    )
    y: list[float] | None = Field(
        None, description="Targets: 0/1 (binary), class indices (multiclass) or values."
    )
    dataset_id: str | None = Field(None, max_length=36, description="An uploaded dataset.")
    features: list[Name] | None = Field(
        None,
        max_length=65_536,
        description="Feature columns of the dataset (default: every column but the target "
        "and the group column).",
    )


class TimeSplitOptions(StrictModel):
    """A split in time: rows with ``column < cutoff`` train, the rest validate."""

    column: Name = Field(description="A dataset column of numbers or ISO-8601 dates/times.")
    cutoff: float | Name = Field(
        description="A number for a numeric column; an ISO-8601 date or time otherwise "
        "(compared as instants, naive times read as UTC).",
        examples=["2024-01-01", 2020],
    )


class ValidationSpec(StrictModel):
    """How the validation data is chosen: one of a fraction, a separate set, or groups."""

    fraction: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Share of the rows held out (default 0.2): stratified by class for "
        "classification, seeded by `seed` (default: the run's seed).",
    )
    dataset_id: str | None = Field(
        None, max_length=36, description="A separate validation dataset (same features)."
    )
    X: Array | None = Field(None, description="Inline validation rows (or images).")
    y: list[float] | None = Field(None, description="Inline validation targets.")
    group_column: Name | None = Field(
        None,
        description="Dataset column of group ids (patient, site, ...): every group lands "
        "entirely on one side of the split.",
    )
    groups: list[str | int] | None = Field(
        None, description="Group id per inline row, as group_column for inline data."
    )
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    leave_one_domain_out: Name | bool | None = Field(
        None,
        description="Domain-based validation: a dataset column of domains (site, device, "
        "country, ...), or `true` for inline data with `groups` as the domains. One child run "
        "per domain trains on the other domains and validates on it, plus one on a random "
        "split of all rows; the run reports per-domain metrics, their support-weighted mean, "
        "the worst domain and the random split's overestimate.",
        examples=["site"],
    )
    time_split: TimeSplitOptions | None = Field(
        None,
        description="Train on the past (column < cutoff), validate on the future (>= cutoff); "
        "a second child run trains on a random split of all rows for comparison.",
    )


class ModelOptions(CNNFields):
    """The MLP's options; with ``type: "cnn"``, the CNN's (the fields of ``CNNFields``)."""

    hidden: list[int] | None = Field(None, description="Hidden layer widths.", examples=[[64, 64]])
    activation: Literal["relu", "gelu", "tanh", "silu"] | None = None
    dropout: float | None = None


class LossOptions(StrictModel):
    name: Literal["bce_with_logits", "cross_entropy", "mse", "huber", "focal"] | None = None
    pos_weight: float | None = None
    class_weights: list[float] | None = None
    label_smoothing: float | None = None
    delta: float | None = None
    gamma: float | None = None
    alpha: float | None = None


class RegularizationOptions(StrictModel):
    l1: float | None = Field(None, description="λ₁ of λ₁Σ|w| added to the loss.")
    l2: float | None = Field(None, description="λ₂ of λ₂Σw² added to the loss.")
    weight_decay: float | None = Field(None, description="The optimizer's weight decay.")


class OptimizerOptions(StrictModel):
    name: Literal["sgd", "adam", "adamw"] | None = None
    lr: float | None = None
    momentum: float | None = None
    nesterov: bool | None = None


class ScheduleOptions(StrictModel):
    name: Literal["none", "cosine", "step"] | None = None
    step_size: int | None = None
    gamma: float | None = None
    min_lr: float | None = None


class EarlyStoppingOptions(StrictModel):
    monitor: str | None = Field(
        None, max_length=200, description="val_loss, train_loss, train_total or a val metric."
    )
    mode: Literal["min", "max"] | None = Field(
        None, description="Default: from the metric registry (roc_auc: max, log_loss: min)."
    )
    patience: int | None = None
    min_delta: float | None = None
    restore_best: bool | None = None


class SanityCheckOptions(StrictModel):
    """Sanity mode: overfit a small subset of the training data (see the README)."""

    rows: int = Field(description="Training rows to memorize, 32..256.", examples=[64])
    epochs: int | None = Field(None, description="Epochs (default 300); replaces `epochs`.")


#: Fields of RunCreate that make the training spec.
TRAINING_FIELDS: tuple[str, ...] = (
    "model",
    "loss",
    "regularization",
    "optimizer",
    "schedule",
    "early_stopping",
    "batch_size",
    "epochs",
    "seed",
    "device",
    "grad_clip_norm",
    "n_classes",
    "sanity_check",
)


class RunCreate(StrictModel):
    """A training run (or, with ``external: true``, a run trained elsewhere that logs here)."""

    task: RunTask
    name: Name | None = Field(None, examples=["churn-mlp"])
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    external: bool = Field(
        False, description="Trained elsewhere: metrics are posted to /v1/runs/{id}/metrics."
    )
    data: DataSpec | None = None
    validation: ValidationSpec | None = None
    model: ModelOptions | None = None
    loss: LossOptions | None = None
    regularization: RegularizationOptions | None = None
    optimizer: OptimizerOptions | None = None
    schedule: ScheduleOptions | None = None
    early_stopping: EarlyStoppingOptions | None = None
    batch_size: int | None = Field(None, examples=[256])
    epochs: int | None = Field(None, examples=[20])
    seed: int | None = None
    device: Literal["auto", "cpu", "cuda"] | None = None
    grad_clip_norm: float | None = None
    n_classes: int | None = None
    sanity_check: SanityCheckOptions | None = Field(
        None,
        description="Train on this many training rows with dropout, penalties and weight "
        "decay off, and judge whether the training loss gets near zero.",
    )


class Progress(BaseModel):
    epoch: int = Field(description="Epochs completed.")
    total_epochs: int | None


class RunRead(BaseModel):
    id: str
    created_at: datetime
    name: str | None
    tags: list[str]
    task: RunTask
    external: bool
    status: RunStatus
    progress: Progress
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    duration_s: float | None
    queue: str | None
    worker: str | None
    device: str | None = Field(description="Where the run trained, e.g. cpu, cuda:0.")
    attempts: int
    cancel_requested: bool
    error: str | None
    spec: dict[str, Any] | None
    data: dict[str, Any]
    summary: dict[str, Any] | None
    evaluation_id: str | None
    parent_id: str | None = Field(
        None, description="The domain-validation run this run is one fit of."
    )


class RunList(BaseModel):
    items: list[RunRead]
    page: Page


class MetricPoint(BaseModel):
    name: str
    step: int
    value: float | None
    timestamp: datetime


class MetricHistory(BaseModel):
    run_id: str
    status: RunStatus
    items: list[MetricPoint]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to fetch only what is newer (same as the one sent when "
        "nothing is new)."
    )
    has_more: bool = Field(description="The page was cut at `limit`: fetch again now.")


class LoggedMetric(StrictModel):
    name: MetricName
    value: float | None = Field(description="NaN, ±inf and null are stored as null.")
    step: int = Field(0, ge=0, le=2**62)
    timestamp: datetime | None = Field(None, description="Default: when the request arrived.")


class MetricBatch(StrictModel):
    """MLflow-style log-batch: many metrics, each with its step and timestamp."""

    metrics: list[LoggedMetric] = Field(default_factory=list)
    status: Literal["succeeded", "failed"] | None = Field(
        None, description="End the run after storing these metrics."
    )
    error: str | None = Field(None, max_length=10_000, description="Why it failed.")


class PredictRequest(StrictModel):
    X: Array = Field(
        description="Rows in the run's feature order; for a cnn, images of the run's shape."
    )


class DatasetRead(BaseModel):
    id: str
    created_at: datetime
    name: str | None
    format: Literal["csv", "parquet", "arrow"]
    target: str
    n_rows: int
    n_columns: int
    size_bytes: int
    schema_: list[dict[str, Any]] = Field(alias="schema")
    target_summary: dict[str, Any]


class DatasetList(BaseModel):
    items: list[DatasetRead]
    page: Page
