"""/v1/runs/{id}/diagnostics: verdicts on a run's training dynamics, with their evidence, and
their plot."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from app import diagnostics_plots
from app.api.deps import SessionDep
from app.api.responses import PLOT_RESPONSES, PROBLEM_RESPONSES, image_response, json_response
from app.api.schemas.diagnostics import DiagnosticsPlotQuery, DiagnosticsQuery, DiagnosticsRead
from app.core.diagnostics import DiagnosticRules
from app.services import diagnostics as service

router = APIRouter(prefix="/v1/runs", tags=["runs"])

_QUEUED: dict[int | str, dict[str, Any]] = {409: {"description": "The run is still queued"}}


def _rules(query: DiagnosticsQuery) -> DiagnosticRules:
    fields = set(DiagnosticsQuery.model_fields)
    return DiagnosticRules(**query.model_dump(include=fields, exclude_none=True))


@router.get(
    "/{run_id}/diagnostics",
    summary="Training diagnostics: vanishing/exploding gradients, frozen layers, dead units, "
    "overfitting, calibration drift, sanity mode",
    response_model=DiagnosticsRead,
    responses={**_QUEUED, **PROBLEM_RESPONSES},
)
def get_diagnostics(
    run_id: str, session: SessionDep, query: Annotated[DiagnosticsQuery, Query()]
) -> Response:
    return json_response(service.run_diagnostics(session, run_id, _rules(query)))


@router.get(
    "/{run_id}/diagnostics/plot",
    summary="The diagnostics plot: losses, per-layer gradient norm, update ratio and dead units "
    "by epoch, with the fired verdicts (SVG, or PNG with ?format=png)",
    response_class=Response,
    responses={**_QUEUED, **PLOT_RESPONSES},
)
def get_diagnostics_plot(
    run_id: str, session: SessionDep, query: Annotated[DiagnosticsPlotQuery, Query()]
) -> Response:
    data = service.plot_source(session, run_id, _rules(query))
    image = diagnostics_plots.render(data, fmt=query.format, title=query.title)
    return image_response(image, query.format)
