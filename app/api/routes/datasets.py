"""/v1/datasets: upload a CSV, Parquet or Arrow file (or images as .npy / .npz) for training
runs; read its schema."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from app.api.body import media_type, read_body
from app.api.deps import SessionDep, SettingsDep
from app.api.responses import PROBLEM_RESPONSES, json_response
from app.api.schemas.common import Name, Page
from app.api.schemas.runs import DatasetList, DatasetRead
from app.db import runs as repo
from app.errors import PayloadTooLarge
from app.services import datasets as service
from app.services import image_datasets

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

_UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            media: {"schema": {"type": "string", "format": "binary"}}
            for media in sorted(service.MEDIA_TYPES)
        },
        "description": "The file itself as the body; its content type names the format "
        "(or send application/octet-stream with ?format=).",
    }
}


@router.post(
    "",
    status_code=201,
    summary="Upload a dataset (CSV, Parquet, Arrow; images as .npy / .npz)",
    response_model=DatasetRead,
    responses=PROBLEM_RESPONSES,
    openapi_extra=_UPLOAD_DOC,
)
async def upload_dataset(
    request: Request,
    settings: SettingsDep,
    session: SessionDep,
    target: Annotated[Name, Query(description="The target column.")],
    name: Annotated[Name | None, Query(description="A name to find it by.")] = None,
    format: Annotated[
        Literal["csv", "parquet", "arrow", "npy", "npz"] | None,
        Query(description="Overrides the content type."),
    ] = None,
    shape: Annotated[
        str | None,
        Query(
            max_length=100,
            description="Images: C,H,W (or H,W) of an Arrow fixed-size-list column.",
            examples=["1,28,28"],
        ),
    ] = None,
) -> Response:
    kind = media_type(request)
    fmt = service.format_for(kind, format)
    limit = min(settings.max_body_bytes, settings.max_dataset_bytes)
    try:
        content = await read_body(request, limit)
    except PayloadTooLarge:
        raise PayloadTooLarge(
            f"the file exceeds the dataset size limit of {limit} bytes "
            "(EVALSERVE_MAX_DATASET_BYTES)",
            field="body",
        ) from None
    row = await run_in_threadpool(
        service.store_dataset,
        session,
        content,
        fmt=fmt,
        target=target,
        name=name,
        max_rows=settings.max_rows,
        image_shape=image_datasets.parse_shape(shape),
        max_bytes=limit,
    )
    return json_response(
        service.as_read(row), status_code=201, headers={"Location": f"/v1/datasets/{row.id}"}
    )


@router.get("", summary="List datasets", response_model=DatasetList)
def list_datasets(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    rows, total = repo.list_datasets(session, limit=limit, offset=offset)
    page = Page(total=total, limit=limit, offset=offset)
    return json_response({"items": [service.as_read(r) for r in rows], "page": page.model_dump()})


@router.get(
    "/{dataset_id}",
    summary="A dataset's schema and row count",
    response_model=DatasetRead,
    responses=PROBLEM_RESPONSES,
)
def get_dataset(dataset_id: str, session: SessionDep) -> Response:
    return json_response(service.as_read(service.get_dataset(session, dataset_id)))
