"""/v1/runs/{id}/diagnostics: verdicts on a run's training dynamics, with their evidence."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from app.api.deps import SessionDep
from app.api.responses import PROBLEM_RESPONSES, json_response
from app.api.schemas.diagnostics import DiagnosticsQuery, DiagnosticsRead
from app.core.diagnostics import DiagnosticRules
from app.services import diagnostics as service

router = APIRouter(prefix="/v1/runs", tags=["runs"])


@router.get(
    "/{run_id}/diagnostics",
    summary="Training diagnostics: vanishing/exploding gradients, frozen layers, dead units, "
    "overfitting, calibration drift, sanity mode",
    response_model=DiagnosticsRead,
    responses={409: {"description": "The run is still queued"}, **PROBLEM_RESPONSES},
)
def get_diagnostics(
    run_id: str, session: SessionDep, query: Annotated[DiagnosticsQuery, Query()]
) -> Response:
    rules = DiagnosticRules(**query.model_dump(exclude_none=True))
    return json_response(service.run_diagnostics(session, run_id, rules))
