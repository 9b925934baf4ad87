"""``GET /metrics``: the app's Prometheus metrics, with the run gauges read from the database."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.exposition import choose_encoder
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.responses import Response

from app.api.deps import SessionDep, SettingsDep
from app.api.observability import Metrics
from app.db.models import RUN_STATUSES, Run

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_PLAIN_0_0_4: {}}}},
)
def metrics(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Requests, latencies, batch sizes, compute time, and runs by status, queue depth and
    worker heartbeats (two cheap queries at scrape time), in the format the scraper accepts."""
    collectors: Metrics = request.app.state.metrics
    try:
        _read_run_gauges(collectors, session, settings.heartbeat_timeout_s)
        collectors.db_up.set(1)
    except SQLAlchemyError:
        session.rollback()
        collectors.db_up.set(0)
    # Text format 0.0.4 by default; OpenMetrics or text 1.0.0 when the scraper asks for it.
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(collectors.registry), headers={"Content-Type": content_type})


def _read_run_gauges(collectors: Metrics, session: Session, heartbeat_timeout_s: float) -> None:
    counts = dict.fromkeys(RUN_STATUSES, 0)
    for status, n in session.execute(select(Run.status, func.count()).group_by(Run.status)):
        counts[status] = int(n)
    for status, n in counts.items():
        collectors.runs.labels(status=status).set(n)
    collectors.queue_depth.set(counts["queued"])

    now = datetime.now(UTC)
    cutoff = now - timedelta(seconds=heartbeat_timeout_s)
    fresh = func.count().filter(Run.heartbeat_at >= cutoff)
    row = session.execute(
        select(fresh, func.max(Run.heartbeat_at)).where(Run.status == "running")
    ).one()
    collectors.fresh_heartbeats.set(int(row[0] or 0))
    newest = row[1]
    if isinstance(newest, datetime):
        if newest.tzinfo is None:
            newest = newest.replace(tzinfo=UTC)
        collectors.heartbeat_age.set(max((now - newest).total_seconds(), 0.0))
    else:
        collectors.heartbeat_age.set(math.nan)
