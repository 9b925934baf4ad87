"""/v1/losses: named losses (with their parameters) for a batch."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from app.api.body import ARROW_MEDIA_TYPE, JSON_MEDIA_TYPE, read_batch
from app.api.deps import SettingsDep
from app.api.npz import NPZ_MEDIA_TYPE
from app.api.responses import PROBLEM_RESPONSES, json_response
from app.api.schemas.evaluations import LossesOptions, LossesRequest, LossesResponse
from app.services.losses import compute_losses

router = APIRouter(prefix="/v1/losses", tags=["losses"])


@router.post(
    "",
    summary="Compute losses for a batch",
    response_model=LossesResponse,
    responses=PROBLEM_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                JSON_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/LossesRequest"}},
                ARROW_MEDIA_TYPE: {
                    "schema": {"type": "string", "format": "binary"},
                    "description": "Columns y_true, y_pred (or y_pred_0..K-1), sample_weight "
                    "(masks: fixed-shape tensor columns); options as query parameters.",
                },
                NPZ_MEDIA_TYPE: {
                    "schema": {"type": "string", "format": "binary"},
                    "description": "An .npz archive (np.savez) with arrays y_true, y_pred, "
                    "sample_weight; options as query parameters.",
                },
            },
        }
    },
)
async def create_losses(request: Request, settings: SettingsDep) -> Response:
    options, arrays = await read_batch(
        request,
        max_bytes=settings.max_body_bytes,
        max_rows=settings.max_rows,
        request_model=LossesRequest,
        options_model=LossesOptions,
    )
    return json_response(await run_in_threadpool(compute_losses, options, arrays))
