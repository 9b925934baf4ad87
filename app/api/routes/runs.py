"""/v1/runs: submit training runs, follow them (metric history, Server-Sent Events), cancel
them, log metrics of external runs, predict with the trained weights."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from app import domain_plots
from app.api.body import json_body_doc, read_json, read_json_bytes
from app.api.deps import SessionDep, SettingsDep
from app.api.responses import (
    PLOT_RESPONSES,
    PROBLEM_RESPONSES,
    PlotFormatQuery,
    PlotTitleQuery,
    image_response,
    json_response,
)
from app.api.schemas.common import Name, Page, Tag
from app.api.schemas.runs import (
    MetricBatch,
    MetricHistory,
    PredictRequest,
    RunCreate,
    RunList,
    RunRead,
    RunStatus,
)
from app.db import runs as repo
from app.db.models import TERMINAL_STATUSES
from app.db.session import get_sessionmaker, session_scope
from app.errors import InvalidInput, PayloadTooLarge
from app.services import domain_validation
from app.services import runs as service
from app.worker import Dispatcher

router = APIRouter(prefix="/v1/runs", tags=["runs"])

_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
KEEPALIVE_S = 15.0


def get_dispatcher(request: Request) -> Dispatcher:
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]


def _enqueue_all(dispatcher: Dispatcher, jobs: list[tuple[str, str | None]]) -> None:
    for run_id, queue in jobs:
        dispatcher.enqueue(run_id, queue)


@router.post(
    "",
    status_code=202,
    summary="Submit a training run",
    response_model=RunRead,
    responses={
        429: {"description": "The API key has its maximum of runs queued or running"},
        **PROBLEM_RESPONSES,
    },
    openapi_extra=json_body_doc("RunCreate"),
)
async def create_run(
    request: Request, settings: SettingsDep, session: SessionDep, dispatcher: DispatcherDep
) -> Response:
    spec = await read_json(request, RunCreate, settings.max_body_bytes)
    # Set by the auth dependency (EVALSERVE_AUTH=on): the key's runs count towards its limit.
    api_key_id = getattr(request.state, "api_key_id", None)
    run = await run_in_threadpool(service.create_run, session, spec, settings, api_key_id)
    # Sent after the response, i.e. after the request's transaction has committed: a run whose
    # transaction rolls back is never handed to a worker. A domain-validation run sends its
    # child runs (app.services.domain_validation).
    jobs = await run_in_threadpool(domain_validation.jobs, session, run)
    background = BackgroundTask(_enqueue_all, dispatcher, jobs) if jobs else None
    return json_response(
        service.as_read(run),
        status_code=202,
        headers={"Location": f"/v1/runs/{run.id}"},
        background=background,
    )


@router.get("", summary="List runs", response_model=RunList)
def list_runs(
    session: SessionDep,
    status: RunStatus | None = None,
    name: Annotated[Name | None, Query()] = None,
    tag: Annotated[Tag | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    parent_id: Annotated[
        str | None,
        Query(max_length=36, description="Only the child runs of this domain-validation run."),
    ] = None,
) -> Response:
    rows, total = repo.list_runs(
        session,
        status=status,
        name=name,
        tag=tag,
        limit=limit,
        offset=offset,
        parent_id=parent_id,
    )
    page = Page(total=total, limit=limit, offset=offset)
    return json_response({"items": [service.as_read(r) for r in rows], "page": page.model_dump()})


@router.get("/{run_id}", summary="A run", response_model=RunRead, responses=PROBLEM_RESPONSES)
def get_run(run_id: str, session: SessionDep) -> Response:
    return json_response(service.as_read(service.get_run(session, run_id)))


@router.post(
    "/{run_id}/cancel",
    summary="Cancel a run (a running one stops at its next batch boundary)",
    response_model=RunRead,
    responses={202: {"description": "Cancellation requested"}, **PROBLEM_RESPONSES},
)
def cancel_run(run_id: str, session: SessionDep) -> Response:
    run, over = service.cancel_run(session, run_id)
    return json_response(service.as_read(run), status_code=200 if over else 202)


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


@router.get(
    "/{run_id}/metrics",
    summary="Metric history, for polling dashboards (cursor + ETag)",
    response_model=MetricHistory,
    responses={304: {"description": "Nothing changed since the ETag sent"}, **PROBLEM_RESPONSES},
)
def get_metrics(
    run_id: str,
    request: Request,
    session: SessionDep,
    names: Annotated[
        list[str] | None, Query(description="Metric names (repeated or comma-separated).")
    ] = None,
    after_step: Annotated[int | None, Query(ge=-1, description="Only steps after this.")] = None,
    cursor: Annotated[
        str | None, Query(max_length=1000, description="`next_cursor` of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Response:
    query = service.metric_query(names, after_step, cursor, limit)
    etag = service.metrics_etag(session, run_id, query)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if _etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return json_response(service.metric_history(session, run_id, query), headers=headers)


@router.post(
    "/{run_id}/metrics",
    summary="Log a batch of metrics to an external run",
    response_model=RunRead,
    responses={409: {"description": "Not an external running run"}, **PROBLEM_RESPONSES},
    openapi_extra=json_body_doc("MetricBatch"),
)
async def log_metrics(
    run_id: str, request: Request, settings: SettingsDep, session: SessionDep
) -> Response:
    raw = await read_json_bytes(request, settings.max_body_bytes)
    limit = settings.max_external_metrics
    try:
        peek = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"is not valid JSON: {exc}", field="body") from None
    # Count before validating: an oversized batch is a 413 whatever its contents.
    metrics = peek.get("metrics") if isinstance(peek, dict) else None
    if isinstance(metrics, list) and len(metrics) > limit:
        raise PayloadTooLarge(
            f"{len(metrics)} metrics in one request; the limit is {limit} "
            "(EVALSERVE_MAX_EXTERNAL_METRICS): split the batch",
            field="metrics",
        )
    batch = MetricBatch.model_validate(peek)
    run = await run_in_threadpool(service.log_metrics, session, run_id, batch, limit)
    return json_response(service.as_read(run))


@router.post(
    "/{run_id}/predict",
    summary="Predictions of the trained model for posted rows",
    responses={409: {"description": "The run has no trained weights"}, **PROBLEM_RESPONSES},
    openapi_extra=json_body_doc("PredictRequest"),
)
async def predict(
    run_id: str, request: Request, settings: SettingsDep, session: SessionDep
) -> Response:
    body = await read_json(request, PredictRequest, settings.max_body_bytes)
    result = await run_in_threadpool(service.predict, session, run_id, body.X, settings.max_rows)
    return json_response(result)


@router.get(
    "/{run_id}/domain-validation/plot",
    summary="The domain-validation plot: the metric per held-out domain with its support, the "
    "support-weighted mean, the random split and its gap, the worst domain, and ECE per domain "
    "(SVG, or PNG with ?format=png)",
    response_class=Response,
    responses={
        409: {"description": "The run's child runs have not all succeeded"},
        **PLOT_RESPONSES,
    },
)
def get_domain_validation_plot(
    run_id: str,
    session: SessionDep,
    format: PlotFormatQuery = "svg",
    metric: Annotated[
        str | None,
        Query(max_length=64, description="Default: the primary metric (the worst domain's)."),
    ] = None,
    title: PlotTitleQuery = None,
) -> Response:
    summary = domain_validation.plot_source(session, run_id)
    image = domain_plots.render(summary, fmt=format, metric=metric, title=title)
    return image_response(image, format)


# -- Server-Sent Events ----------------------------------------------------------------------------
def _sse(event: str, data: Any, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: ".encode() + orjson.dumps(data, option=_OPTS) + b"\n\n"


@router.get(
    "/{run_id}/events",
    summary="Server-Sent Events: each new epoch's metrics and status changes, until the run ends",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The event stream"},
        **PROBLEM_RESPONSES,
    },
)
async def run_events(
    run_id: str,
    request: Request,
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header(max_length=1000)] = None,
) -> StreamingResponse:
    """Events ``metrics`` (``{"step", "metrics": {name: value}}``, id = a cursor: reconnecting
    with ``Last-Event-ID`` resumes after it), ``status`` (on every change) and a final ``end``.
    The database is read every ``events_poll_interval_s``; each read is its own short
    transaction, so a stream holds no connection between polls."""
    factory = get_sessionmaker(settings)
    after = service.decode_cursor(last_event_id) if last_event_id else None

    def poll(after: tuple[int, str | None] | None) -> Any:
        with session_scope(factory=factory) as session:
            return service.run_events(session, run_id, after)

    first = await run_in_threadpool(poll, after)  # an unknown run is a 404, not an empty stream

    async def stream() -> AsyncIterator[bytes]:
        nonlocal after
        state, groups, more = first
        last_state: dict[str, Any] | None = None
        last_sent = time.monotonic()
        while True:
            for step, values, cursor in groups:
                yield _sse("metrics", {"step": step, "metrics": values}, cursor)
                after = service.decode_cursor(cursor)
                last_sent = time.monotonic()
            if state != last_state:
                yield _sse("status", state)
                last_state, last_sent = state, time.monotonic()
            if state["status"] in TERMINAL_STATUSES and not more:
                yield _sse("end", {"status": state["status"]})
                return
            if not more:
                if time.monotonic() - last_sent > KEEPALIVE_S:
                    yield b": keepalive\n\n"
                    last_sent = time.monotonic()
                await asyncio.sleep(settings.events_poll_interval_s)
            if await request.is_disconnected():
                return
            state, groups, more = await run_in_threadpool(poll, after)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
