"""Request and response models of the inspections of trained runs and of the data checks."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.api.schemas.common import Name, StrictModel

InspectionStatus = Literal["queued", "running", "succeeded", "failed"]
MAX_ATTRIBUTION_ROWS = 10_000


class ImportanceRequest(StrictModel):
    """Permutation importance on the run's validation split (or a posted dataset)."""

    metric: Name | None = Field(
        None,
        description="An engine metric of the run's task (default: roc_auc for binary, "
        "accuracy for multiclass, r2 for regression).",
        examples=["roc_auc"],
    )
    metric_params: dict[str, Any] | None = Field(None, description="Parameters of the metric.")
    n_repeats: int = Field(5, ge=1, le=100, description="Permutations per feature or group.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="scikit-learn's `random_state`.")
    groups: dict[Name, list[Name]] | None = Field(
        None,
        description="Features permuted together (correlated ones), by group name; the features "
        "in no group are permuted alone.",
        examples=[{"size": ["height", "weight"]}],
    )
    dataset_id: str | None = Field(
        None,
        max_length=36,
        description="Score on this dataset (it needs the run's feature columns and target) "
        "instead of the run's validation split.",
    )


class AttributionRequest(StrictModel):
    """Per-feature attributions of posted rows."""

    X: list[list[float]] = Field(
        ..., min_length=1, max_length=MAX_ATTRIBUTION_ROWS, description="Rows to explain."
    )
    method: Literal["integrated_gradients", "gradient_x_input"] = "integrated_gradients"
    steps: int = Field(
        64,
        ge=1,
        le=4096,
        description="Integrated gradients: equal steps of the straight path (steps + 1 "
        "gradients), integrated by a kink-aware trapezoid rule (the trapezoid rule, with the "
        "point where a ReLU switches inside a step placed so the step matches the increment "
        "of the output). A row whose completeness residual exceeds 0.5% of |f(x) - "
        "f(baseline)| is integrated again with twice the steps, up to 16 times as many "
        "(`steps_used` per row in the result). Ignored by gradient_x_input.",
    )
    baseline: list[float] | None = Field(
        None, description="The reference input of integrated gradients (default: training means)."
    )
    target: int | list[int] | None = Field(
        None,
        description="Class whose logit is explained (one for all rows, or one per row); "
        "default: the predicted class of each row. Binary: 1 explains the logit, 0 its "
        "negation. Ignored for regression.",
    )


class RobustnessRequest(StrictModel):
    """The metric under perturbations of increasing level."""

    families: list[Name] = Field(
        ...,
        min_length=1,
        description="Perturbation families: gaussian_jitter, missingness, feature_dropout.",
        examples=[["gaussian_jitter", "missingness"]],
    )
    levels: dict[Name, list[float]] = Field(
        default_factory=dict,
        description="Levels per family (default: the family's own levels).",
        examples=[{"gaussian_jitter": [0.1, 0.5, 1.0]}],
    )
    metric: Name | None = Field(None, description="As for importance.")
    metric_params: dict[str, Any] | None = None
    seed: int = Field(0, ge=0, le=2**32 - 1)
    floor: float | None = Field(
        None, description="The metric may not fall below this (rise above it for a loss)."
    )
    max_relative_drop: float | None = Field(
        None, gt=0, description="Largest tolerated loss of the clean value, as a fraction."
    )
    dataset_id: str | None = Field(None, max_length=36)


class DataChecksRequest(StrictModel):
    """Two uploaded datasets compared as training and validation sets."""

    train_dataset_id: str = Field(..., max_length=36)
    validation_dataset_id: str = Field(..., max_length=36)
    features: list[Name] | None = Field(
        None, description="Columns compared (default: every column both share but the target)."
    )
    categorical: list[Name] | None = Field(
        None, description="Numeric columns to treat as categories (text columns always are)."
    )


class InspectionRead(BaseModel):
    id: str
    run_id: str
    kind: str
    status: InspectionStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    plot: str | None = Field(None, description="Where the plot is, once succeeded.")
