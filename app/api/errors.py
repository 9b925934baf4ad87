"""One handler that renders every error as an RFC 9457 problem body (application/problem+json)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app.errors import EvalserveError, ServiceUnavailable

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://evalserve.dev/problems/"


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    instance: str,
    slug: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    if extra:
        body.update(extra)
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def _loc_to_field(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path")]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def validation_problem(errors: list[Any], instance: str) -> Response:
    """422 for schema errors: every error with its field path, the first one in ``detail``."""
    items = [
        {
            "field": _loc_to_field(tuple(e.get("loc", ()))),
            "message": e.get("msg", ""),
            "type": e.get("type", ""),
        }
        for e in errors
    ]
    # Keep the body small for a million bad rows: the first few errors say enough.
    shown = items[:20]
    first = shown[0] if shown else {"field": "body", "message": "invalid request"}
    return problem_response(
        422,
        "Invalid input",
        f"{first['field']}: {first['message']}",
        instance=instance,
        slug="invalid-input",
        extra={"field": first["field"], "errors": shown, "error_count": len(items)},
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(EvalserveError)
    async def _domain(request: Request, exc: EvalserveError) -> Response:
        extra = {"field": exc.field} if exc.field else None
        return problem_response(
            exc.status_code,
            exc.title,
            str(exc),
            instance=request.url.path,
            slug=exc.type_slug,
            extra=extra,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _request_validation(request: Request, exc: RequestValidationError) -> Response:
        return validation_problem(list(exc.errors()), request.url.path)

    @app.exception_handler(ValidationError)
    async def _pydantic_validation(request: Request, exc: ValidationError) -> Response:
        return validation_problem(exc.errors(include_url=False), request.url.path)

    @app.exception_handler(OperationalError)
    async def _db_unavailable(request: Request, exc: OperationalError) -> Response:
        # Never leak the driver's text (it can hold host names and SQL) to a client.
        err = ServiceUnavailable("the database is temporarily unavailable; retry shortly")
        return problem_response(
            err.status_code,
            err.title,
            err.detail,
            instance=request.url.path,
            slug=err.type_slug,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "Error")
        return problem_response(
            exc.status_code,
            title,
            str(exc.detail),
            instance=request.url.path,
            slug=title.lower().replace(" ", "-"),
            headers=getattr(exc, "headers", None),
        )
