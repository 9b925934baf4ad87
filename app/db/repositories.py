"""Every query of the service, one function per thing returned.

Functions take the caller's session and never commit: the request's (or worker step's)
:func:`app.db.session.session_scope` does. Writes are flushed, so generated ids and defaults are
readable on the returned rows and constraint violations surface at the call.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, defer
from sqlalchemy.sql.base import ExecutableOption
from sqlalchemy.sql.expression import type_coerce

from app.db.models import HEADLINE_METRICS, Evaluation
from app.errors import InvalidInput

__all__ = [
    "create_evaluation",
    "get_evaluation",
    "has_tag",
    "list_evaluations",
    "newest_first_page",
]

T = TypeVar("T")


def _headline_columns(headline: Mapping[str, float | None]) -> dict[str, float | None]:
    values: dict[str, float | None] = {}
    for key in HEADLINE_METRICS:
        value = headline.get(key)
        if value is not None:
            # SQLite stores NaN as NULL and -0.0 as 0 while PostgreSQL keeps both: refuse the
            # first and store 0.0 for the second, so both backends hold the same values.
            value = float(value) + 0.0
            if not math.isfinite(value):
                raise InvalidInput(f"{value!r} is not a finite number", field=f"headline.{key}")
        values[key] = value
    return values


def check_json_document(document: Any, field: str) -> None:
    try:
        json.dumps(document, allow_nan=False)
    except (TypeError, ValueError) as exc:
        # NaN and infinities are not JSON, and jsonb refuses them; keep both backends alike.
        raise InvalidInput(f"cannot be stored as JSON: {exc}", field=field) from exc


def create_evaluation(
    session: Session,
    *,
    task: str,
    n_samples: int,
    report: dict[str, Any],
    name: str | None = None,
    model: str | None = None,
    tags: Iterable[str] = (),
    headline: Mapping[str, float | None],
) -> Evaluation:
    """Add an evaluation and flush it; returns the row with its ``id`` and ``created_at`` set.

    ``headline`` maps metric column names (:data:`~app.db.models.HEADLINE_METRICS`) to values;
    other keys are ignored, missing ones stored as NULL, ``-0.0`` stored as ``0.0``. ``tags``
    are stored once each, in the order first given.

    The report reads back equal to what was given, floats exactly, with these JSON-isms:
    dictionary keys become strings, tuples lists; and PostgreSQL's jsonb keeps numbers as
    decimals, so ``-0.0`` reads back as ``0.0``, and a float Python writes in exponent form
    with |x| >= 1e16 reads back as an ``int`` of the same decimal digits (``4.6e+16`` ->
    ``46000000000000000``), which ``float()`` turns back into exactly the original float.

    Raises :class:`~app.errors.InvalidInput` for a non-finite headline value or a report that is
    not JSON (NaN, infinities, non-string keys of unsupported types, other objects).
    PostgreSQL also rejects the NUL character in any text or JSON string (a ``DataError`` at
    flush); the API refuses it before it gets here.
    """
    check_json_document(report, "report")
    evaluation = Evaluation(
        task=task,
        n_samples=n_samples,
        report=report,
        name=name,
        model=model,
        tags=list(dict.fromkeys(tags)),
        **_headline_columns(headline),
    )
    session.add(evaluation)
    session.flush()
    return evaluation


def get_evaluation(session: Session, evaluation_id: str) -> Evaluation | None:
    """The evaluation with this id, or ``None`` if there is none."""
    return session.get(Evaluation, evaluation_id)


def has_tag(session: Session, tags: Any, tag: str) -> ColumnElement[bool]:
    """A condition: the JSON list column ``tags`` holds ``tag`` (a whole element)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        # jsonb containment, served by the table's GIN index on tags.
        return type_coerce(tags, JSONB).contains([tag])
    if dialect == "sqlite":
        elements = func.json_each(tags).table_valued("value")
        return select(elements.c.value).where(elements.c.value == tag).exists()
    raise RuntimeError(f"unsupported database dialect {dialect!r}: use SQLite or PostgreSQL")


def list_evaluations(
    session: Session,
    *,
    model: str | None = None,
    name: str | None = None,
    task: str | None = None,
    tag: str | None = None,
    limit: int = 50,
    offset: int = 0,
    include_report: bool = True,
) -> tuple[list[Evaluation], int]:
    """One page of evaluations, newest first (ties broken by id, descending), and the total.

    Filters are exact matches and combine with AND; ``tag`` keeps evaluations carrying that tag.
    The total counts every match, ignoring ``limit`` and ``offset``. With
    ``include_report=False`` the (possibly large) report is not loaded, and reading it raises
    instead of issuing one query per row.
    """
    conditions: list[ColumnElement[bool]] = []
    if model is not None:
        conditions.append(Evaluation.model == model)
    if name is not None:
        conditions.append(Evaluation.name == name)
    if task is not None:
        conditions.append(Evaluation.task == task)
    if tag is not None:
        conditions.append(has_tag(session, Evaluation.tags, tag))

    options = () if include_report else (defer(Evaluation.report, raiseload=True),)
    return newest_first_page(
        session, Evaluation, conditions, limit=limit, offset=offset, options=options
    )


def newest_first_page(
    session: Session,
    model: type[T],
    conditions: Sequence[ColumnElement[bool]] = (),
    *,
    limit: int,
    offset: int,
    options: Sequence[ExecutableOption] = (),
) -> tuple[list[T], int]:
    """One page of ``model`` rows matching ``conditions``, newest first (ties broken by id,
    descending, so pages are stable), and the total number of matches."""
    table: Any = model
    total = session.scalar(select(func.count()).select_from(model).where(*conditions))
    query = (
        select(model)
        .where(*conditions)
        .order_by(table.created_at.desc(), table.id.desc())
        .limit(limit)
        .offset(offset)
        .options(*options)
    )
    return list(session.scalars(query)), int(total or 0)
