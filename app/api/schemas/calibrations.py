"""Requests and responses of /v1/calibrations."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app.api.schemas.common import Label, ScoreType, StoreOptions, StrictModel
from app.api.schemas.evaluations import Scores

Method = Literal["temperature", "isotonic", "platt", "beta", "histogram"]


class LabelledScores(StrictModel):
    y_true: list[Any] = Field(min_length=1, description="Labels, as in /v1/evaluations.")
    y_score: Scores = Field(description="Probabilities or logits: (n,) binary, (n, K) multiclass.")
    sample_weight: list[float] | None = None


class Scored(StrictModel):
    y_score: Scores = Field(description="Scores to calibrate, of the fit batch's kind and shape.")


class CalibrationRequest(StoreOptions, LabelledScores):
    """Fit a calibrator on a labelled batch (ideally held-out data the model was not fit on)."""

    method: Method = Field(description="Calibration method.", examples=["temperature"])
    task: Literal["binary", "multiclass"]
    score_type: ScoreType = Field("probability", description="How to read y_score.")
    labels: list[Label] | None = Field(None, description="Class labels in column order.")
    pos_label: Label | None = Field(None, description="The positive class (binary).")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Method parameters: temperature {device: auto|cpu|cuda}; platt "
        "{smooth_targets}; histogram {n_bins, strategy}.",
    )
    validation: LabelledScores | None = Field(
        None, description="A separate labelled batch to judge the calibrator on."
    )
    apply: Scored | None = Field(
        None,
        description="Scores to calibrate with the fitted calibrator (returned instead of "
        "the fit batch's calibrated probabilities).",
    )
    return_probabilities: bool = Field(True, description="Include calibrated probabilities.")
    n_bins: int = Field(15, ge=1, le=10_000, description="Bins for ECE/MCE and reliability.")
    binning: Literal["uniform", "quantile"] = "uniform"


class ApplyRequest(StrictModel):
    """New scores for a stored calibrator; with ``y_true`` the answer also scores the result."""

    y_score: Scores
    y_true: list[Any] | None = None
    sample_weight: list[float] | None = None
    n_bins: int = Field(15, ge=1, le=10_000)
    binning: Literal["uniform", "quantile"] = "uniform"
