"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import SettingsDep
from app.db.session import get_engine, ping
from app.errors import ServiceUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database is reachable",
    responses={503: {"description": "Database unreachable"}},
)
def readyz(settings: SettingsDep) -> dict[str, str]:
    engine = get_engine(settings)
    if not ping(engine):
        raise ServiceUnavailable("the database is not reachable")
    return {"status": "ready", "database": engine.dialect.name}
