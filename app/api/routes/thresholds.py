"""/v1/thresholds: recommended decision thresholds."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from app.api.body import JSON_MEDIA_TYPE, ensure_media_type, media_type, parse_json, read_body
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
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                JSON_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ThresholdRequest"}}
            },
        }
    },
)
async def create_threshold(request: Request, settings: SettingsDep) -> Response:
    ensure_media_type(media_type(request), (JSON_MEDIA_TYPE,))
    body = await read_body(request, settings.max_body_bytes)
    req = await run_in_threadpool(parse_json, ThresholdRequest, body)
    check_row_limit({"y_true": req.y_true}, settings.max_rows)
    return json_response(await run_in_threadpool(recommend, req))
