"""/v1/detection-evaluations: COCO metrics, AP per class, PR curves and a confusion matrix.

Stored reports are listed, fetched and plotted with the other evaluations
(``/v1/evaluations?task=detection``, ``/v1/evaluations/{id}/plots/{pr,confusion}``).
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from app.api.body import json_body_doc, read_json_bytes
from app.api.deps import SessionDep, SettingsDep
from app.api.observability import observe_evaluation
from app.api.responses import PROBLEM_RESPONSES, json_response
from app.api.schemas.detection import DetectionEvaluationRead
from app.services import detection as service

router = APIRouter(prefix="/v1/detection-evaluations", tags=["evaluations"])


@router.post(
    "",
    summary="Evaluate object detections (COCO mAP)",
    response_model=DetectionEvaluationRead,
    responses=PROBLEM_RESPONSES,
    openapi_extra=json_body_doc("DetectionEvaluationRequest"),
)
async def create_detection_evaluation(
    request: Request, settings: SettingsDep, session: SessionDep
) -> Response:
    body = await read_json_bytes(request, settings.max_body_bytes)
    options, ds = await run_in_threadpool(service.parse_body, body, settings.max_rows)
    started = time.perf_counter()
    report = await run_in_threadpool(service.compute_report, options, ds)
    observe_evaluation(request, ds.n_images, time.perf_counter() - started)
    if options.persist:
        report = await run_in_threadpool(service.store_report, session, report)
        location = {"Location": f"/v1/evaluations/{report['id']}"}
        return json_response(report, status_code=201, headers=location)
    return json_response(report)
