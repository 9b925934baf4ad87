"""/v1/thresholds: recommended decision thresholds."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from app.api.body import json_body_doc, read_json
from app.api.deps import SettingsDep
from app.api.responses import PROBLEM_RESPONSES, json_response
from app.api.schemas.thresholds import ThresholdRequest
from app.services.arrays import check_row_limit
from app.services.thresholds import recommend

router = APIRouter(prefix="/v1/thresholds", tags=["thresholds"])


@router.post(
    "",
    summary="Recommend a decision threshold",
    responses=PROBLEM_RESPONSES,
    openapi_extra=json_body_doc("ThresholdRequest"),
)
async def create_threshold(request: Request, settings: SettingsDep) -> Response:
    req = await read_json(request, ThresholdRequest, settings.max_body_bytes)
    check_row_limit({"y_true": req.y_true}, settings.max_rows)
    return json_response(await run_in_threadpool(recommend, req))
