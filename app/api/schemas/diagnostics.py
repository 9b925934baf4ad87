"""Query and response models of ``GET /v1/runs/{id}/diagnostics``.

The query parameters override the fields of :class:`app.core.diagnostics.DiagnosticRules`
(whose checks name the offending parameter); their defaults are that dataclass's.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from app.api.schemas.common import StrictModel
from app.api.schemas.runs import RunStatus


class DiagnosticsQuery(StrictModel):
    vanishing_grad_norm: float | None = Field(
        None, description="A layer's epoch-mean gradient norm below this is vanishing (1e-7)."
    )
    vanishing_ratio: float | None = Field(
        None, description="...or below this fraction of the largest layer's norm (1e-3)."
    )
    vanishing_min_fraction: float | None = Field(
        None, description="Share of epochs a layer must vanish in (0.5)."
    )
    exploding_grad_norm: float | None = Field(
        None, description="A batch gradient norm above this is exploding (1e3)."
    )
    exploding_growth: float | None = Field(
        None, description="...or an epoch-mean norm this many times its first epoch's (1e3)."
    )
    frozen_update_ratio: float | None = Field(
        None, description="Frozen: ||dw||/||w|| at or below this in every epoch (0)."
    )
    dead_fraction: float | None = Field(
        None, description="Dead units: share of a ReLU layer's units dead at the end (0.5)."
    )
    patience: int | None = Field(
        None, description="Epochs after the val-loss / ECE minimum before flagging (3)."
    )
    min_rel_change: float | None = Field(
        None, description="Relative change below which a loss neither rises nor falls (0.01)."
    )
    ece_rise: float | None = Field(
        None, description="Calibration drift: rise of validation ECE over its minimum (0.02)."
    )


class DiagnosticsPlotQuery(DiagnosticsQuery):
    """The rules of the diagnostics, plus the image's format and title."""

    format: Literal["svg", "png"] = "svg"
    title: str | None = Field(None, max_length=200)


class VerdictRead(BaseModel):
    name: str
    triggered: bool
    applicable: bool
    rule: str = Field(description="The rule with its thresholds filled in.")
    evidence: list[dict[str, Any]]
    note: str | None


class DiagnosticsRead(BaseModel):
    run_id: str
    status: RunStatus
    epochs: int = Field(description="Epochs with recorded metrics.")
    layers: list[str]
    rules: dict[str, Any] = Field(description="The thresholds used (defaults + query).")
    triggered: list[str] = Field(description="Names of the verdicts that fired.")
    verdicts: list[VerdictRead]
    failure: dict[str, Any] | None = Field(
        description="Where a diverged run went non-finite: epoch, batch, layer, loss."
    )
    sanity_check: dict[str, Any] | None = Field(
        description="The sanity-mode verdict (pass/fail, criterion, causes), if requested."
    )
    series: dict[str, dict[str, Any]] = Field(
        description="Per metric: n, first, last, min, max (each with its epoch)."
    )
