"""Queries on stored calibrators."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from app.db.models import Calibrator
from app.db.repositories import check_json_document, has_tag, newest_first_page


def create_calibrator(
    session: Session,
    *,
    method: str,
    task: str,
    n_classes: int,
    score_type: str,
    n_samples: int,
    state: dict[str, Any],
    report: dict[str, Any],
    name: str | None = None,
    model: str | None = None,
    tags: Iterable[str] = (),
) -> Calibrator:
    """Add a calibrator and flush it; returns the row with ``id`` and ``created_at`` set."""
    check_json_document(state, "state")
    check_json_document(report, "report")
    row = Calibrator(
        method=method,
        task=task,
        n_classes=n_classes,
        score_type=score_type,
        n_samples=n_samples,
        state=state,
        report=report,
        name=name,
        model=model,
        tags=list(dict.fromkeys(tags)),
    )
    session.add(row)
    session.flush()
    return row


def get_calibrator(session: Session, calibrator_id: str) -> Calibrator | None:
    """The calibrator with this id, or ``None``."""
    return session.get(Calibrator, calibrator_id)


def list_calibrators(
    session: Session,
    *,
    model: str | None = None,
    name: str | None = None,
    method: str | None = None,
    tag: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Calibrator], int]:
    """One page of calibrators, newest first (ties by id, descending), and the total."""
    conditions: list[ColumnElement[bool]] = []
    if model is not None:
        conditions.append(Calibrator.model == model)
    if name is not None:
        conditions.append(Calibrator.name == name)
    if method is not None:
        conditions.append(Calibrator.method == method)
    if tag is not None:
        conditions.append(has_tag(session, Calibrator.tags, tag))
    return newest_first_page(session, Calibrator, conditions, limit=limit, offset=offset)
