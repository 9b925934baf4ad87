"""The application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from app import __version__
from app.api.auth import require_api_key
from app.api.errors import install_error_handlers
from app.api.observability import Metrics, ObservabilityMiddleware
from app.api.routes import calibrations, datasets, evaluations, health, losses, runs, thresholds
from app.api.routes import detection as detection_routes
from app.api.routes import diagnostics as diagnostics_routes
from app.api.routes import inspections as inspection_routes
from app.api.routes import metrics as metrics_routes
from app.api.schemas.calibrations import ApplyRequest, CalibrationRequest
from app.api.schemas.detection import DetectionEvaluationRequest
from app.api.schemas.evaluations import EvaluationRequest, LossesRequest
from app.api.schemas.runs import MetricBatch, PredictRequest, RunCreate
from app.api.schemas.thresholds import ThresholdRequest
from app.api.timeouts import TimeoutMiddleware
from app.config import Settings, get_settings
from app.db.session import hold_engine
from app.logs import configure_logging
from app.worker import make_dispatcher
from app.worker.inspection_tasks import make_inspection_dispatcher
from app.worker.reaper import Reaper

DESCRIPTION = """
Post prediction batches (labels with probabilities, logits or regression predictions) and get
back losses, metrics, confusion matrices, curves and calibration error — equal to scikit-learn
and PyTorch to the last digit. Bodies are JSON, or an Apache Arrow IPC stream for large batches.
Errors are RFC 9457 problem bodies that name the field and the problem.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the ASGI app. ``settings`` defaults to the environment's."""
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    # Training runs: without a broker the in-process runner trains them. The reaper runs in
    # the API process in both modes: it outlives the workers whose runs it reaps.
    dispatcher = make_dispatcher(settings)
    reaper = Reaper(settings, dispatcher)
    inspections = make_inspection_dispatcher(settings)  # inspection jobs, same workers

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The engine is the process's, shared with any other app on the same database (the
        # tests run several at once): the last app to stop disposes it, and only after its
        # workers have stopped, so no connection is still checked out. Stopping what never
        # started is a no-op, so a failed start still stops the rest.
        with hold_engine(settings.database_url):
            try:
                dispatcher.start()
                inspections.start()
                reaper.start()
                yield
            finally:
                reaper.stop()
                inspections.stop()
                dispatcher.stop()

    app = FastAPI(
        title="evalserve",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # EVALSERVE_AUTH=on: API keys on /v1 (a no-op elsewhere and when auth is off).
        dependencies=[Depends(require_api_key)],
    )
    app.state.settings = settings
    app.state.dispatcher = dispatcher
    app.state.inspections = inspections
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(losses.router)
    app.include_router(evaluations.router)
    app.include_router(detection_routes.router)
    app.include_router(calibrations.router)
    app.include_router(thresholds.router)
    app.include_router(runs.router)
    app.include_router(diagnostics_routes.router)
    app.include_router(datasets.router)
    app.include_router(inspection_routes.router)
    app.include_router(metrics_routes.router)
    # A registry per app (never the global one): several apps in one process do not clash.
    app.state.metrics = Metrics()
    # Innermost: a timed-out request's 503 still gets CORS headers, a request id and metrics.
    app.add_middleware(TimeoutMiddleware, timeout_s=settings.request_timeout_s)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID", "ETag", "Location"],
        )
    # Added last, so outermost: every response (CORS preflights and auth errors too) gets an id.
    app.add_middleware(ObservabilityMiddleware, metrics=app.state.metrics)
    _document_raw_bodies(
        app,
        (
            *(EvaluationRequest, LossesRequest, CalibrationRequest, ApplyRequest),
            *(ThresholdRequest, RunCreate, MetricBatch, PredictRequest),
            DetectionEvaluationRequest,
        ),
    )
    return app


def _document_raw_bodies(app: FastAPI, models: tuple[type[BaseModel], ...]) -> None:
    """Add the request models of routes that read their body by hand to the OpenAPI schema.

    Those routes parse JSON with pydantic-core directly (and also take Arrow), so FastAPI does not
    see a body parameter; their ``openapi_extra`` refers to these components.
    """

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                js = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(js.pop("$defs", {}))
                components[model.__name__] = js
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
