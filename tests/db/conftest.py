"""Fixtures for the persistence tests: unmigrated databases and an evaluation factory.

Shared migrated databases and the rolled-back ``db_session`` come from ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from app.db.models import Evaluation
from app.db.repositories import create_evaluation


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A brand-new database with no tables, one per test (for migrations and real commits)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    make_postgres_database = request.getfixturevalue("make_postgres_database")
    return str(make_postgres_database(migrate=False))


@pytest.fixture
def make_evaluation(db_session: Session) -> Callable[..., Evaluation]:
    """``make_evaluation(**overrides)``: create_evaluation with valid defaults, on db_session."""

    def make(**overrides: Any) -> Evaluation:
        fields: dict[str, Any] = {
            "task": "binary",
            "n_samples": 10,
            "report": {"task": "binary", "metrics": {"accuracy": 0.9}},
            "headline": {"accuracy": 0.9},
        }
        fields.update(overrides)
        return create_evaluation(db_session, **fields)

    return make
