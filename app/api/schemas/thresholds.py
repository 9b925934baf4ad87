"""Requests of /v1/thresholds."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app.api.schemas.common import Label, ScoreType, StrictModel
from app.api.schemas.evaluations import Scores
from app.core.thresholds import OBJECTIVE_PARAMETERS, ObjectiveName

#: The objective names are the engine's own, so the two cannot drift apart.
Objective = ObjectiveName


class ThresholdRequest(StrictModel):
    """Recommend a decision threshold from labelled scores.

    Binary: one threshold on ``y_score`` as posted (probabilities or logits). Multiclass
    (one-vs-rest, on probabilities) and multilabel: one threshold per class or label.
    """

    task: Literal["binary", "multiclass", "multilabel"] = "binary"
    y_true: list[Any] = Field(min_length=1, examples=[[0, 1, 1, 0, 1]])
    y_score: Scores = Field(examples=[[0.2, 0.9, 0.55, 0.4, 0.7]])
    score_type: ScoreType = "probability"
    sample_weight: list[float] | None = None
    labels: list[Label] | None = None
    pos_label: Label | None = None
    objective: Objective = Field("f1", description="What the threshold optimizes.")
    beta: float | None = Field(None, description="fbeta: β > 0.")
    min_recall: float | None = Field(None, description="precision_at_recall: recall ≥ r.")
    min_precision: float | None = Field(None, description="recall_at_precision: precision ≥ p.")
    max_fpr: float | None = Field(None, description="tpr_at_fpr: FPR ≤ f.")
    max_ppr: float | None = Field(None, description="recall_at_ppr: predicted-positive rate ≤ q.")
    cost_fp: float | None = Field(None, description="cost: cost of a false positive (≥ 0).")
    cost_fn: float | None = Field(None, description="cost: cost of a false negative (≥ 0).")
    gain_tp: float | None = Field(None, description="cost: gain of a true positive (≥ 0).")
    gain_tn: float | None = Field(None, description="cost: gain of a true negative (≥ 0).")
    groups: list[Label] | None = Field(
        None, description="Binary only: a group per row; one threshold per group value too."
    )
    n_neighbors: int = Field(5, ge=0, le=100, description="Operating points on each side.")

    def objective_params(self) -> dict[str, float | None]:
        """Every objective parameter field (unset ones are None: the engine ignores them)."""
        names = {name for params in OBJECTIVE_PARAMETERS.values() for name in params}
        return {name: getattr(self, name) for name in sorted(names)}
