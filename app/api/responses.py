"""Response helpers: fast JSON for reports full of numbers, and the documented error bodies."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import orjson
from fastapi import Query
from starlette.background import BackgroundTask
from starlette.responses import Response

from app import plots

_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def json_response(
    content: Any,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    background: BackgroundTask | None = None,
) -> Response:
    """orjson-encoded JSON; numpy arrays are written directly, NaN/inf would become null.

    ``background`` runs after the response is sent (after the request's commit).
    """
    return Response(
        orjson.dumps(content, option=_OPTS),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
        background=background,
    )


_PROBLEM = {
    "application/problem+json": {
        "schema": {
            "type": "object",
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "instance": {"type": "string"},
                "field": {"type": "string"},
            },
        }
    }
}

PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "Not found", "content": _PROBLEM},
    413: {"description": "Payload or batch too large", "content": _PROBLEM},
    415: {"description": "Unsupported content type", "content": _PROBLEM},
    422: {"description": "Invalid input: the field and the problem", "content": _PROBLEM},
}


#: The documented responses of a plot route: the image, SVG or PNG, and the problems.
PLOT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {media: {} for media in plots.MEDIA_TYPES.values()}},
    **PROBLEM_RESPONSES,
}
#: The query parameters of every plot route: ``?format=`` and ``?title=``.
PlotFormatQuery = Annotated[plots.PlotFormat, Query(description="svg (default) or png")]
PlotTitleQuery = Annotated[str | None, Query(max_length=200)]


def plot_response(
    kind: plots.PlotKind, report: Any, fmt: plots.PlotFormat, title: str | None
) -> Response:
    """A rendered evaluation or calibration plot (see :func:`image_response`)."""
    return image_response(plots.render(kind, report, fmt=fmt, title=title), fmt)


def image_response(image: bytes, fmt: str) -> Response:
    """Plot bytes as SVG or PNG. Rendering is deterministic, so the bytes' hash is a strong
    ETag."""
    etag = '"' + hashlib.sha256(image).hexdigest()[:32] + '"'
    return Response(image, media_type=plots.MEDIA_TYPES[fmt], headers={"ETag": etag})
