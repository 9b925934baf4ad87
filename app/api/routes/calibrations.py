"""/v1/calibrations: fit (and store) calibrators, apply stored ones, list and fetch them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from app.api.body import json_body_doc, read_json
from app.api.deps import SessionDep, SettingsDep
from app.api.responses import (
    PLOT_RESPONSES,
    PROBLEM_RESPONSES,
    PlotFormatQuery,
    PlotTitleQuery,
    json_response,
    plot_response,
)
from app.api.schemas.calibrations import ApplyRequest, CalibrationRequest
from app.api.schemas.common import Page
from app.db import calibrators as repo
from app.db.models import Calibrator
from app.errors import NotFound
from app.services import calibrations as service
from app.services.arrays import check_row_limit

router = APIRouter(prefix="/v1/calibrations", tags=["calibrations"])


def _get(session: SessionDep, calibrator_id: str) -> Calibrator:
    row = repo.get_calibrator(session, calibrator_id)
    if row is None:
        raise NotFound(f"no calibrator with id {calibrator_id!r}", field="calibrator_id")
    return row


@router.post(
    "",
    summary="Fit a calibrator on a labelled batch",
    responses=PROBLEM_RESPONSES,
    openapi_extra=json_body_doc("CalibrationRequest"),
)
async def create_calibration(
    request: Request, settings: SettingsDep, session: SessionDep
) -> Response:
    req = await read_json(request, CalibrationRequest, settings.max_body_bytes)
    check_row_limit({"y_true": req.y_true}, settings.max_rows)
    response, _ = await run_in_threadpool(service.fit, req)
    if req.persist:
        response = await run_in_threadpool(service.store, session, response)
        location = {"Location": f"/v1/calibrations/{response['id']}"}
        return json_response(response, status_code=201, headers=location)
    return json_response(response)


@router.post(
    "/{calibrator_id}/apply",
    summary="Calibrated probabilities from a stored calibrator",
    responses=PROBLEM_RESPONSES,
    openapi_extra=json_body_doc("ApplyRequest"),
)
async def apply_calibration(
    calibrator_id: str, request: Request, settings: SettingsDep, session: SessionDep
) -> Response:
    row = await run_in_threadpool(_get, session, calibrator_id)
    req = await read_json(request, ApplyRequest, settings.max_body_bytes)
    check_row_limit({"y_true": req.y_score}, settings.max_rows)
    return json_response(await run_in_threadpool(service.apply, row, req))


@router.get("", summary="List stored calibrators")
def list_calibrations(
    session: SessionDep,
    model: Annotated[str | None, Query(max_length=200)] = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
    method: Annotated[str | None, Query(max_length=20)] = None,
    tag: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    rows, total = repo.list_calibrators(
        session, model=model, name=name, method=method, tag=tag, limit=limit, offset=offset
    )
    page = Page(total=total, limit=limit, offset=offset)
    return json_response(
        {"items": [service.as_summary(r) for r in rows], "page": page.model_dump()}
    )


@router.get(
    "/{calibrator_id}/plots/reliability",
    summary="Reliability diagram before/after (validation batch when there was one)",
    responses=PLOT_RESPONSES,
    response_class=Response,
)
def plot_calibration(
    calibrator_id: str,
    session: SessionDep,
    format: PlotFormatQuery = "svg",
    title: PlotTitleQuery = None,
) -> Response:
    report = _get(session, calibrator_id).report
    judged = report.get("validation") or report["fit"]
    return plot_response("calibration", judged, format, title)


@router.get("/{calibrator_id}", summary="A stored calibrator", responses=PROBLEM_RESPONSES)
def get_calibration(calibrator_id: str, session: SessionDep) -> Response:
    return json_response(service.as_read(_get(session, calibrator_id)))
