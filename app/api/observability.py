"""Request ids, JSON access logs and Prometheus metrics for the HTTP API.

:class:`ObservabilityMiddleware` is pure ASGI (streaming responses such as Server-Sent Events keep
streaming): it gives each request an id (a valid ``X-Request-ID`` from the client, else a fresh
one), returns it as the ``X-Request-ID`` header of every response, counts and times the request
by its route template (``/v1/runs/{run_id}``, never the raw path, so label values stay few) and
logs one JSON line per request. Bodies and prediction payloads are never logged.

:class:`Metrics` holds the collectors of one app in its own :class:`CollectorRegistry`, so several
apps in one process (tests) do not clash. The run gauges are read from the database when
``/metrics`` is scraped (see :mod:`app.api.routes.metrics`).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import problem_response
from app.db.models import RUN_STATUSES

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
#: The route label of requests that matched no route (404s for unknown paths).
UNMATCHED_ROUTE = "<unmatched>"

access_log = logging.getLogger("evalserve.access")

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_ROW_BUCKETS = (10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000)


class Metrics:
    """The Prometheus collectors of one app, registered in a registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "evalserve_http_requests",
            "HTTP requests by method, route template and status code.",
            ("method", "route", "status"),
            registry=r,
        )
        self.latency = Histogram(
            "evalserve_http_request_duration_seconds",
            "HTTP request latency (until the last body byte) by method, route template, status.",
            ("method", "route", "status"),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_rows = Histogram(
            "evalserve_evaluation_batch_rows",
            "Rows in the prediction batches of evaluation requests.",
            buckets=_ROW_BUCKETS,
            registry=r,
        )
        self.compute_seconds = Histogram(
            "evalserve_evaluation_compute_seconds",
            "Time to compute an evaluation report (parsing and storing excluded).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.runs = Gauge(
            "evalserve_runs",
            "Training runs by status (read from the database at scrape time).",
            ("status",),
            registry=r,
        )
        self.queue_depth = Gauge(
            "evalserve_queue_depth", "Training runs waiting in the queue.", registry=r
        )
        self.fresh_heartbeats = Gauge(
            "evalserve_worker_heartbeats_fresh",
            "Running runs whose worker heartbeat is younger than heartbeat_timeout_s.",
            registry=r,
        )
        self.heartbeat_age = Gauge(
            "evalserve_worker_heartbeat_age_seconds",
            "Age of the newest heartbeat of the running runs (NaN when none is running).",
            registry=r,
        )
        self.db_up = Gauge(
            "evalserve_metrics_database_up",
            "1 if the run gauges could be read from the database at this scrape, else 0.",
            registry=r,
        )
        for status in RUN_STATUSES:
            self.runs.labels(status=status)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count and time one finished request."""
        labels = {"method": method, "route": route, "status": str(status)}
        self.requests.labels(**labels).inc()
        self.latency.labels(**labels).observe(seconds)


def observe_evaluation(request: Request, rows: int, seconds: float) -> None:
    """Record one evaluation's batch size and compute time in the app's metrics (if any)."""
    metrics: Metrics | None = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.batch_rows.observe(rows)
        metrics.compute_seconds.observe(seconds)


def request_id_of(request: Request) -> str | None:
    """The id :class:`ObservabilityMiddleware` gave this request."""
    value = request.scope.get("state", {}).get("request_id")
    return value if isinstance(value, str) else None


def _valid_request_id(value: str | None) -> str:
    if value is not None and _REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The path template of the route that handled the request, or :data:`UNMATCHED_ROUTE`."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else UNMATCHED_ROUTE


class ObservabilityMiddleware:
    """Pure ASGI middleware: request id header, request metrics and one JSON log line each."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection; only ``http`` ones are observed."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _valid_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = int(message["status"])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        error: BaseException | None = None
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            error = exc
            if response_started:
                raise
            # Answer here, not in Starlette's outer error middleware, so the 500 has the id too.
            response = problem_response(
                500,
                "Internal Server Error",
                "an unexpected error occurred; quote the request id when reporting it",
                instance=str(scope.get("path", "")),
                slug="internal",
                extra={"request_id": request_id},
            )
            await response(scope, receive, send_with_id)
        finally:
            self._finish(scope, request_id, status, time.perf_counter() - started, error)

    def _finish(
        self,
        scope: Scope,
        request_id: str,
        status: int,
        seconds: float,
        error: BaseException | None,
    ) -> None:
        method = str(scope.get("method", ""))
        route = route_template(scope)
        self.metrics.observe_request(method, route, status, seconds)
        fields: dict[str, Any] = {
            "request_id": request_id,
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
        }
        level = logging.ERROR if status >= 500 else logging.INFO
        access_log.log(
            level,
            "%s %s %d",
            method,
            route,
            status,
            extra={"fields": fields},
            exc_info=(type(error), error, error.__traceback__) if error is not None else None,
        )
