"""Reading request bodies: size limits and content negotiation (JSON, Arrow IPC stream, .npz).

Bodies are read by hand rather than by FastAPI's body parameter so that (a) the size limit is
enforced while streaming, before a huge body is held in memory, and (b) JSON is parsed and
validated in one pass by pydantic-core, which is several times faster than ``json.loads`` plus
validation on batches of a million floats.
"""

from __future__ import annotations

import io
from typing import Any, TypeVar

import numpy as np
import orjson
import pyarrow as pa
from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from app.api.npz import NPZ_MEDIA_TYPE, OCTET_STREAM, read_npz
from app.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from app.services.arrays import arrow_arrays, check_row_limit
from app.services.segmentation import check_pixel_limit

JSON_MEDIA_TYPE = "application/json"
ARROW_MEDIA_TYPE = "application/vnd.apache.arrow.stream"

M = TypeVar("M", bound=BaseModel)


def media_type(request: Request) -> str:
    raw = request.headers.get("content-type", JSON_MEDIA_TYPE)
    return raw.split(";", 1)[0].strip().lower() or JSON_MEDIA_TYPE


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(
            f"the body is {int(declared)} bytes; the limit is {max_bytes} bytes "
            "(EVALSERVE_MAX_BODY_BYTES)",
            field="body",
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(
                f"the body exceeds the limit of {max_bytes} bytes (EVALSERVE_MAX_BODY_BYTES)",
                field="body",
            )
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        raise InvalidInput("the request body is empty", field="body")
    return body


def parse_json(model: type[M], body: bytes) -> M:
    """Parse and validate a JSON body in one pass (errors become 422 problem bodies)."""
    return model.model_validate_json(body)


async def read_json_bytes(request: Request, max_bytes: int) -> bytes:
    """The raw body of a JSON-only route (415 for another content type, 413 if too large)."""
    ensure_media_type(media_type(request), (JSON_MEDIA_TYPE,))
    return await read_body(request, max_bytes)


async def read_json(request: Request, model: type[M], max_bytes: int) -> M:
    """A JSON-only route's body, validated as ``model`` off the event loop."""
    body = await read_json_bytes(request, max_bytes)
    return await run_in_threadpool(parse_json, model, body)


def json_body_doc(model_name: str) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads a JSON body of ``model_name`` by hand."""
    schema = {"$ref": f"#/components/schemas/{model_name}"}
    return {"requestBody": {"required": True, "content": {JSON_MEDIA_TYPE: {"schema": schema}}}}


def query_options(request: Request) -> dict[str, Any]:
    """Options posted as query parameters beside an Arrow body.

    Lists are comma-separated (``metrics=roc_auc,f1``); a value starting with ``[`` or ``{`` is
    read as JSON, for options that carry parameters (``losses=[{"name":"huber","delta":2}]``).
    """
    out: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        value = values[-1]
        if value[:1] in ("[", "{"):
            try:
                out[key] = orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                raise InvalidInput(f"is not valid JSON: {exc}", field=key) from None
        elif key in _LIST_OPTIONS:
            out[key] = [v for part in values for v in part.split(",") if v]
        else:
            out[key] = value
    return out


_LIST_OPTIONS = frozenset({"metrics", "losses", "labels", "tags", "curves"})


def read_arrow(body: bytes) -> dict[str, np.ndarray[Any, Any]]:
    """Columns of an Arrow IPC stream as numpy arrays (zero-copy where Arrow allows).

    A column of Arrow's fixed-shape tensor type (``pa.fixed_shape_tensor``, e.g. one (H, W)
    mask per row) becomes one array of shape (rows, *tensor shape).
    """
    try:
        table = pa.ipc.open_stream(io.BytesIO(body)).read_all()
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        raise InvalidInput(f"not a readable Arrow IPC stream ({exc})", field="body") from None
    columns: dict[str, np.ndarray[Any, Any]] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if column.null_count:
            raise InvalidInput(
                f"column {name!r} has {column.null_count} nulls: every row needs a value",
                field=name,
            )
        if isinstance(column.type, pa.FixedShapeTensorType):
            columns[name] = _tensor_column(column)
        else:
            columns[name] = column.to_numpy()
    return columns


def _tensor_column(column: pa.ChunkedArray) -> np.ndarray[Any, Any]:
    """A fixed-shape tensor column as one array of shape (rows, *logical tensor shape).

    ``shape`` is the physical layout; ``permutation`` says how the logical dimensions map onto
    it (the logical tensor is the physical one transposed by ``argsort(permutation)``). Read by
    hand: pyarrow's ``to_numpy_ndarray`` fails on some permuted 3-D tensors.
    """
    array = column.combine_chunks()
    kind = array.type
    values = array.storage.flatten().to_numpy(zero_copy_only=False)
    data = values.reshape(len(array), *kind.shape)
    perm = kind.permutation
    if perm is not None and list(perm) != sorted(perm):
        data = data.transpose(0, *(1 + np.argsort(perm)))
    return data


def ensure_media_type(kind: str, allowed: tuple[str, ...]) -> None:
    if kind not in allowed:
        raise UnsupportedMediaType(
            f"content type {kind!r} is not accepted; send one of {', '.join(allowed)}",
            field="content-type",
        )


async def read_batch(
    request: Request,
    *,
    max_bytes: int,
    max_rows: int,
    request_model: type[M],
    options_model: type[BaseModel],
) -> tuple[Any, dict[str, Any]]:
    """Options and arrays from a JSON body, or from an Arrow or .npz body plus query parameters.

    Returns the validated options (the whole request model for JSON) and the arrays by field
    name (``y_true``, ``y_score``, ``y_pred``, ``sample_weight``). An .npz body's arrays are
    named like Arrow columns (see :mod:`app.api.npz`). Masks (y_true with three or more
    dimensions) count a row per pixel against ``max_rows``.
    """
    kind = media_type(request)
    ensure_media_type(kind, (JSON_MEDIA_TYPE, ARROW_MEDIA_TYPE, NPZ_MEDIA_TYPE, OCTET_STREAM))
    body = await read_body(request, max_bytes)
    if kind == ARROW_MEDIA_TYPE:
        options: Any = options_model.model_validate(query_options(request))
        arrays = arrow_arrays(await run_in_threadpool(read_arrow, body))
    elif kind in (NPZ_MEDIA_TYPE, OCTET_STREAM):
        options = options_model.model_validate(query_options(request))
        arrays = arrow_arrays(await run_in_threadpool(read_npz, body, max_bytes))
    else:
        options = await run_in_threadpool(parse_json, request_model, body)
        arrays = {f: getattr(options, f, None) for f in _ARRAY_FIELDS}
    check_row_limit(arrays, max_rows)
    check_pixel_limit(arrays, max_rows)
    return options, arrays


_ARRAY_FIELDS = ("y_true", "y_score", "y_pred", "sample_weight", "ids", "groups")
