"""/v1/evaluations: a report for a batch, optionally stored; listing and fetching stored ones."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from app.api.body import ARROW_MEDIA_TYPE, JSON_MEDIA_TYPE, read_batch
from app.api.deps import SessionDep, SettingsDep
from app.api.npz import NPZ_MEDIA_TYPE
from app.api.observability import observe_evaluation
from app.api.responses import (
    PLOT_RESPONSES,
    PROBLEM_RESPONSES,
    PlotFormatQuery,
    PlotTitleQuery,
    json_response,
    plot_response,
)
from app.api.schemas.common import Page
from app.api.schemas.evaluations import (
    EvaluationList,
    EvaluationOptions,
    EvaluationRead,
    EvaluationRequest,
)
from app.db import repositories
from app.db.models import Evaluation
from app.errors import NotFound
from app.services import evaluations as service

router = APIRouter(prefix="/v1/evaluations", tags=["evaluations"])

_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            JSON_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/EvaluationRequest"}},
            ARROW_MEDIA_TYPE: {
                "schema": {"type": "string", "format": "binary"},
                "description": "Columns y_true, y_score (or y_score_0..K-1), y_pred, "
                "sample_weight (segmentation masks: fixed-shape tensor columns y_true (H, W) "
                "and y_pred (H, W) or (C, H, W)); options as query parameters.",
            },
            NPZ_MEDIA_TYPE: {
                "schema": {"type": "string", "format": "binary"},
                "description": "An .npz archive (np.savez) with arrays named like the Arrow "
                "columns, e.g. y_true (N, H, W) and y_pred (N, H, W) or (N, C, H, W); options "
                "as query parameters. application/octet-stream is read the same way.",
            },
        },
    }
}


@router.post(
    "",
    summary="Evaluate a prediction batch",
    response_model=EvaluationRead,
    responses=PROBLEM_RESPONSES,
    openapi_extra=_BODY_DOC,
)
async def create_evaluation(
    request: Request, settings: SettingsDep, session: SessionDep
) -> Response:
    options, arrays = await read_batch(
        request,
        max_bytes=settings.max_body_bytes,
        max_rows=settings.max_rows,
        request_model=EvaluationRequest,
        options_model=EvaluationOptions,
    )
    started = time.perf_counter()
    report = await run_in_threadpool(
        service.compute_report, options, arrays, settings.max_curve_points
    )
    observe_evaluation(request, report["n_samples"], time.perf_counter() - started)
    if options.persist:
        report = await run_in_threadpool(service.store_report, session, report)
        location = {"Location": f"/v1/evaluations/{report['id']}"}
        return json_response(report, status_code=201, headers=location)
    return json_response(report)


@router.get("", summary="List stored evaluations", response_model=EvaluationList)
def list_evaluations(
    session: SessionDep,
    model: Annotated[str | None, Query(max_length=200)] = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
    task: Annotated[str | None, Query(max_length=20)] = None,
    tag: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    rows, total = repositories.list_evaluations(
        session,
        model=model,
        name=name,
        task=task,
        tag=tag,
        limit=limit,
        offset=offset,
        include_report=False,
    )
    page = Page(total=total, limit=limit, offset=offset)
    return json_response(
        {"items": [service.as_summary(r) for r in rows], "page": page.model_dump()}
    )


@router.get(
    "/{evaluation_id}/plots/{kind}",
    summary="A plot of a stored evaluation (SVG, or PNG with ?format=png)",
    responses=PLOT_RESPONSES,
    response_class=Response,
)
def plot_evaluation(
    evaluation_id: str,
    kind: Literal["roc", "pr", "reliability", "confusion"],
    session: SessionDep,
    format: PlotFormatQuery = "svg",
    title: PlotTitleQuery = None,
) -> Response:
    report = service.as_read(_stored(session, evaluation_id))
    return plot_response(kind, report, format, title)


@router.get(
    "/{evaluation_id}",
    summary="A stored evaluation",
    response_model=EvaluationRead,
    responses=PROBLEM_RESPONSES,
)
def get_evaluation(evaluation_id: str, session: SessionDep) -> Response:
    return json_response(service.as_read(_stored(session, evaluation_id)))


def _stored(session: SessionDep, evaluation_id: str) -> Evaluation:
    row = repositories.get_evaluation(session, evaluation_id)
    if row is None:
        raise NotFound(f"no evaluation with id {evaluation_id!r}", field="evaluation_id")
    return row
