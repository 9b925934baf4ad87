"""Datasets: read an uploaded CSV, Parquet or Arrow file, describe it, store it, load it back.

Image datasets (``.npy`` / ``.npz`` uploads, Arrow tensor columns) are normalized to an Arrow
table with one ``fixed_shape_tensor`` column by :mod:`app.services.image_datasets` and stored as
Arrow.

A dataset is stored as uploaded (every worker reads it from the database) together with a
description of each column and of the target, so a run can be checked against it before it is
queued without reading the file again.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from app.db import runs as repo
from app.db.models import Dataset
from app.errors import InvalidInput, NotFound, PayloadTooLarge, UnsupportedMediaType
from app.services import image_datasets

FORMATS: Final[tuple[str, ...]] = ("csv", "parquet", "arrow", *image_datasets.FORMATS)
#: Content types of uploads and the format each names.
MEDIA_TYPES: Final[dict[str, str]] = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/vnd.apache.arrow.file": "arrow",
    "application/vnd.apache.arrow.stream": "arrow",
    **image_datasets.MEDIA_TYPES,
}
GENERIC_MEDIA_TYPES: Final[frozenset[str]] = frozenset({"application/octet-stream"})
_MAX_DISTINCT_VALUES = 100  # target values listed in the summary (class labels)


def format_for(media_type: str, declared: str | None) -> str:
    """The file format: the ``format`` query parameter, else the content type's."""
    if declared is not None:
        if declared not in FORMATS:
            raise InvalidInput(f"is {declared!r}; expected one of {list(FORMATS)}", field="format")
        return declared
    fmt = MEDIA_TYPES.get(media_type)
    if fmt is None:
        accepted = ", ".join(sorted(MEDIA_TYPES))
        hint = " (or any type with ?format=csv|parquet|arrow|npy|npz)"
        raise UnsupportedMediaType(
            f"content type {media_type!r} is not a dataset format; send one of {accepted}{hint}",
            field="content-type",
        )
    return fmt


def read_table(content: bytes, fmt: str) -> pa.Table:
    """Parse stored or uploaded bytes; a file that does not parse is an input error."""
    try:
        if fmt == "csv":
            return pa_csv.read_csv(io.BytesIO(content))
        if fmt == "parquet":
            return pq.read_table(io.BytesIO(content))
        try:
            return pa.ipc.open_file(pa.BufferReader(content)).read_all()
        except pa.ArrowInvalid:
            return pa.ipc.open_stream(pa.BufferReader(content)).read_all()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidInput(f"not a readable {fmt} file ({exc})", field="body") from None


def _is_numeric(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t))


def _as_float(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.cast(column, pa.float64())


def describe_column(name: str, column: pa.ChunkedArray) -> dict[str, Any]:
    numeric = _is_numeric(column.type)
    finite: bool | None = None
    if numeric:
        values = _as_float(column)
        finite = bool(pc.all(pc.is_finite(values)).as_py() in (True, None))
    try:
        n_distinct: int | None = int(pc.count_distinct(column).as_py())
    except pa.ArrowException:  # nested types (lists, structs) have no distinct count
        n_distinct = None
    return {
        "name": name,
        "type": str(column.type),
        "numeric": numeric,
        "null_count": int(column.null_count),
        "finite": finite,
        "n_distinct": n_distinct,
    }


def describe_target(name: str, column: pa.ChunkedArray) -> dict[str, Any]:
    """Checks the target (numeric, no nulls, finite) and summarizes its values."""
    if not _is_numeric(column.type):
        raise InvalidInput(
            f"column {name!r} has type {column.type}: the target must be numeric "
            "(encode class labels as 0..K-1)",
            field="target",
        )
    if column.null_count:
        raise InvalidInput(
            f"column {name!r} has {column.null_count} nulls: every row needs a target",
            field="target",
        )
    values = _as_float(column)
    if len(values) and not pc.all(pc.is_finite(values)).as_py():
        raise InvalidInput(f"column {name!r} holds NaN or infinite values", field="target")
    summary: dict[str, Any] = {"min": None, "max": None, "integral": True, "values": None}
    if len(values):
        mm = pc.min_max(values).as_py()
        summary["min"], summary["max"] = mm["min"], mm["max"]
        summary["integral"] = bool(pc.all(pc.equal(values, pc.floor(values))).as_py())
    distinct = pc.unique(values)
    summary["n_distinct"] = len(distinct)
    if summary["integral"] and len(distinct) <= _MAX_DISTINCT_VALUES:
        summary["values"] = sorted(int(v) for v in distinct.to_pylist())
    return summary


def describe(table: pa.Table, target: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    names = table.column_names
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise InvalidInput(f"duplicate column names {duplicated}", field="body")
    if target not in names:
        raise InvalidInput(f"is {target!r}, not a column of the file: {names[:50]}", field="target")
    columns = [describe_column(n, c) for n, c in zip(names, table.columns, strict=True)]
    return columns, describe_target(target, table.column(target))


def store_dataset(
    session: Session,
    content: bytes,
    *,
    fmt: str,
    target: str,
    name: str | None,
    max_rows: int,
    image_shape: tuple[int, int, int] | None = None,
    max_bytes: int = 1 << 28,
) -> Dataset:
    """Parse, check and store an upload; returns the stored row.

    Images (``npy``/``npz``, or an Arrow table with a tensor or fixed-size-list column, whose
    shape ``image_shape`` may give) are stored as an Arrow file with one tensor column;
    ``max_bytes`` caps the arrays of an ``.npz`` once inflated.
    """
    if fmt == "npy":
        table = image_datasets.read_npy(content, target)
    elif fmt == "npz":
        table = image_datasets.read_npz(content, target, max_bytes=max_bytes)
    else:
        table = read_table(content, fmt)
    if fmt in image_datasets.FORMATS or image_shape is not None or image_datasets.has_images(table):
        return _store_images(
            session, table, target=target, name=name, max_rows=max_rows, shape=image_shape
        )
    if table.num_rows > max_rows:
        raise PayloadTooLarge(
            f"the file has {table.num_rows} rows; the limit is {max_rows} (EVALSERVE_MAX_ROWS)",
            field="body",
        )
    if table.num_rows == 0:
        raise InvalidInput("the file has no rows", field="body")
    columns, target_summary = describe(table, target)
    return repo.create_dataset(
        session,
        name=name,
        format=fmt,
        target=target,
        n_rows=table.num_rows,
        size_bytes=len(content),
        columns=columns,
        target_summary=target_summary,
        content=content,
    )


def _store_images(
    session: Session,
    table: pa.Table,
    *,
    target: str,
    name: str | None,
    max_rows: int,
    shape: tuple[int, int, int] | None,
) -> Dataset:
    if table.num_rows > max_rows:
        raise PayloadTooLarge(
            f"the file has {table.num_rows} images; the limit is {max_rows} (EVALSERVE_MAX_ROWS)",
            field="body",
        )
    table = image_datasets.normalize(table, shape)
    images = image_datasets.image_column(table)
    if target == images:
        raise InvalidInput(f"is {target!r}, the image column", field="target")
    columns, target_summary = describe(table.drop_columns([images]), target)
    columns.insert(table.column_names.index(images), image_datasets.describe_images(table, images))
    content = image_datasets.to_ipc(table)
    return repo.create_dataset(
        session,
        name=name,
        format="arrow",
        target=target,
        n_rows=table.num_rows,
        size_bytes=len(content),
        columns=columns,
        target_summary=target_summary,
        content=content,
    )


def get_dataset(session: Session, dataset_id: str, *, field: str = "dataset_id") -> Dataset:
    row = repo.get_dataset(session, dataset_id)
    if row is None:
        raise NotFound(f"no dataset with id {dataset_id!r}", field=field)
    return row


def as_read(row: Dataset) -> dict[str, Any]:
    return {
        "id": row.id,
        "created_at": row.created_at,
        "name": row.name,
        "format": row.format,
        "target": row.target,
        "n_rows": row.n_rows,
        "n_columns": len(row.columns),
        "size_bytes": row.size_bytes,
        "schema": row.columns,
        "target_summary": row.target_summary,
    }


def column(row: Dataset, name: str) -> dict[str, Any] | None:
    return next((c for c in row.columns if c["name"] == name), None)


def feature_columns(
    row: Dataset, features: Sequence[str] | None, *, exclude: Sequence[str], field: str
) -> list[str]:
    """The feature columns of a run: the given ones (checked), else every column but the target
    and ``exclude`` (a group column). Each must be numeric, without nulls, finite."""
    names = [c["name"] for c in row.columns]
    if features is None:
        chosen = [n for n in names if n != row.target and n not in exclude]
    else:
        chosen = list(features)
        for f in chosen:
            if f not in names:
                raise InvalidInput(f"{f!r} is not a column of dataset {row.id}", field=field)
            if f == row.target or f in exclude:
                raise InvalidInput(f"{f!r} is the target or the group column", field=field)
    if not chosen:
        raise InvalidInput(f"dataset {row.id} has no feature columns", field=field)
    for f in chosen:
        info = column(row, f)
        assert info is not None
        if info.get("image_shape") and len(chosen) == 1:
            continue  # the image column alone: a cnn run's input (app.services.image_run_data)
        problem = None
        if not info["numeric"]:
            problem = f"has type {info['type']}; features must be numeric"
        elif info["null_count"]:
            problem = f"has {info['null_count']} nulls"
        elif not info["finite"]:
            problem = "holds NaN or infinite values"
        if problem:
            raise InvalidInput(
                f"column {f!r} of dataset {row.id} {problem} (choose columns with data.features)",
                field=field,
            )
    return chosen


def table_arrays(
    content: bytes, fmt: str, *, features: Sequence[str], target: str, group: str | None = None
) -> tuple[NDArray[np.float32], NDArray[np.float64], NDArray[Any] | None]:
    """``X`` (float32, features in order), ``y`` (float64) and the group column of a file."""
    table = read_table(content, fmt)
    if len(features) == 1 and image_datasets.is_image_column(table.column(features[0])):
        X = image_datasets.pixel_rows(table.column(features[0]))  # (n, C·H·W)
    else:
        X = np.empty((table.num_rows, len(features)), dtype=np.float32)
        for j, name in enumerate(features):
            X[:, j] = _as_float(table.column(name)).to_numpy()
    y = _as_float(table.column(target)).to_numpy()
    groups = None
    if group is not None:
        groups = np.asarray(table.column(group).to_pylist(), dtype=str)
    return X, y, groups
