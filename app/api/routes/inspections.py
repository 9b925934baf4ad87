"""Inspections of trained runs (jobs: importance, attributions, robustness) and data checks.

Jobs always answer ``202`` with the queued inspection and its ``Location``
(``/v1/inspections/{id}``); the id is handed to the workers after the request's transaction
commits. Data checks need no model and cost a few sorts per feature, so they answer ``200``
synchronously, and so do their plots (``.../data-checks/plot``: the same checks, drawn).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from starlette.background import BackgroundTask
from starlette.responses import Response

from app import data_check_plots, inspection_plots
from app.api.deps import SessionDep
from app.api.responses import (
    PLOT_RESPONSES,
    PROBLEM_RESPONSES,
    PlotFormatQuery,
    PlotTitleQuery,
    image_response,
    json_response,
)
from app.api.schemas.images import GradCAMRequest
from app.api.schemas.inspections import (
    AttributionRequest,
    DataChecksRequest,
    ImportanceRequest,
    InspectionRead,
    RobustnessRequest,
)
from app.services import inspection_kinds
from app.services import inspections as service
from app.worker.inspection_tasks import InspectionDispatcher

router = APIRouter(tags=["inspections"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {"description": "The run has not succeeded (no trained weights)"},
    **PROBLEM_RESPONSES,
}


def get_inspection_dispatcher(request: Request) -> InspectionDispatcher:
    dispatcher: InspectionDispatcher = request.app.state.inspections
    return dispatcher


DispatcherDep = Annotated[InspectionDispatcher, Depends(get_inspection_dispatcher)]


def _queued(
    session: Any, dispatcher: InspectionDispatcher, run_id: str, kind: str, body: Any
) -> Response:
    row = service.create(session, run_id, kind, body)
    return json_response(
        service.as_read(row),
        status_code=202,
        headers={"Location": f"/v1/inspections/{row.id}"},
        # After the response, i.e. after the commit: a rolled-back inspection never runs.
        background=BackgroundTask(dispatcher.enqueue, row.id, row.queue),
    )


@router.post(
    "/v1/runs/{run_id}/importance",
    status_code=202,
    summary="Permutation importance of a trained run (a job)",
    response_model=InspectionRead,
    responses=_RESPONSES,
)
def importance(
    run_id: str, body: ImportanceRequest, session: SessionDep, dispatcher: DispatcherDep
) -> Response:
    return _queued(session, dispatcher, run_id, "importance", body)


@router.post(
    "/v1/runs/{run_id}/attributions",
    status_code=202,
    summary="Integrated gradients or gradient × input for posted rows (a job)",
    response_model=InspectionRead,
    responses=_RESPONSES,
)
def attributions(
    run_id: str, body: AttributionRequest, session: SessionDep, dispatcher: DispatcherDep
) -> Response:
    return _queued(session, dispatcher, run_id, "attributions", body)


@router.post(
    "/v1/runs/{run_id}/robustness",
    status_code=202,
    summary="The metric under perturbations of increasing level, and where it breaks (a job)",
    response_model=InspectionRead,
    responses=_RESPONSES,
)
def robustness(
    run_id: str, body: RobustnessRequest, session: SessionDep, dispatcher: DispatcherDep
) -> Response:
    return _queued(session, dispatcher, run_id, "robustness", body)


@router.post(
    "/v1/runs/{run_id}/gradcam",
    status_code=202,
    summary="Grad-CAM maps and PNG overlays of posted images, for a cnn run (a job)",
    response_model=InspectionRead,
    responses=_RESPONSES,
)
def gradcam(
    run_id: str, body: GradCAMRequest, session: SessionDep, dispatcher: DispatcherDep
) -> Response:
    return _queued(session, dispatcher, run_id, "gradcam", body)


@router.get(
    "/v1/inspections/{inspection_id}",
    summary="An inspection: status, and its result once succeeded",
    response_model=InspectionRead,
    responses=PROBLEM_RESPONSES,
)
def get_inspection(inspection_id: str, session: SessionDep) -> Response:
    return json_response(service.as_read(service.get(session, inspection_id)))


@router.get(
    "/v1/inspections/{inspection_id}/plot",
    summary="The plot of a succeeded inspection (SVG, or PNG with ?format=png)",
    response_class=Response,
    responses={409: {"description": "The inspection has not succeeded"}, **PLOT_RESPONSES},
)
def inspection_plot(
    inspection_id: str,
    session: SessionDep,
    format: PlotFormatQuery = "svg",
    title: PlotTitleQuery = None,
) -> Response:
    kind, result = service.plot_source(session, inspection_id)
    return image_response(inspection_plots.render(kind, result, fmt=format, title=title), format)


@router.get(
    "/v1/runs/{run_id}/data-checks",
    summary="Data checks of a run's training vs validation split (synchronous)",
    responses=PROBLEM_RESPONSES,
)
async def run_data_checks(run_id: str, session: SessionDep) -> Response:
    result = await run_in_threadpool(inspection_kinds.run_data_checks, session, run_id)
    return json_response(result)


@router.post(
    "/v1/data-checks",
    summary="Data checks of two uploaded datasets, as training and validation (synchronous)",
    responses=PROBLEM_RESPONSES,
)
async def data_checks(body: DataChecksRequest, session: SessionDep) -> Response:
    result = await run_in_threadpool(inspection_kinds.compare_datasets, session, body)
    return json_response(result)


def _data_checks_plot(checks: dict[str, Any], fmt: str, title: str | None) -> Response:
    return image_response(data_check_plots.render(checks, fmt=fmt, title=title), fmt)


@router.get(
    "/v1/runs/{run_id}/data-checks/plot",
    summary="The plot of a run's data checks: PSI drift per feature, class frequencies, "
    "duplicates and leakage suspects (SVG, or PNG with ?format=png)",
    response_class=Response,
    responses=PLOT_RESPONSES,
)
async def run_data_checks_plot(
    run_id: str, session: SessionDep, format: PlotFormatQuery = "svg", title: PlotTitleQuery = None
) -> Response:
    def draw() -> Response:
        checks = inspection_kinds.run_data_checks(session, run_id)
        return _data_checks_plot(checks, format, title)

    return await run_in_threadpool(draw)


@router.post(
    "/v1/data-checks/plot",
    summary="The plot of the data checks of two uploaded datasets (the body of POST "
    "/v1/data-checks; SVG, or PNG with ?format=png)",
    response_class=Response,
    responses=PLOT_RESPONSES,
)
async def data_checks_plot(
    body: DataChecksRequest,
    session: SessionDep,
    format: PlotFormatQuery = "svg",
    title: PlotTitleQuery = None,
) -> Response:
    def draw() -> Response:
        checks = inspection_kinds.compare_datasets(session, body)
        return _data_checks_plot(checks, format, title)

    return await run_in_threadpool(draw)
