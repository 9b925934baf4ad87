"""An app per test on a real, migrated database; each test's writes are rolled back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.api.deps import get_db
from app.config import Settings
from app.db.session import get_session
from app.main import create_app

LIMITS = {"max_body_bytes": 2_000_000, "max_rows": 50_000}


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    """The app on the session's SQLite database, with small body and row limits."""
    app = create_app(Settings(database_url=sqlite_url, **LIMITS))
    with TestClient(app) as c:
        yield c


@pytest.fixture
def store_client(db_url: str, db_sessionmaker: sessionmaker[Session]) -> Iterator[TestClient]:
    """The app on SQLite and on PostgreSQL, inside the test's rolled-back transaction."""
    app = create_app(Settings(database_url=db_url, **LIMITS))

    def joined_session() -> Iterator[Session]:
        yield from get_session(factory=db_sessionmaker)

    app.dependency_overrides[get_db] = joined_session
    # No lifespan: its shutdown would dispose the engine that holds the test's connection.
    yield TestClient(app)
