"""An app per test on a real, migrated database; each test's writes are rolled back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.api.deps import get_db
from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.db.session import dispose_engines, get_session
from app.main import create_app

LIMITS = {"max_body_bytes": 2_000_000, "max_rows": 50_000}
#: Statuses of runs and inspections after which nothing changes.
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


@contextmanager
def live_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, **settings: Any
) -> Iterator[TestClient]:
    """An app with its lifespan (in-process runner, reaper) on a committed database.

    ``request.param`` picks the backend: ``"sqlite"`` (a migrated file) or ``"postgresql"`` (a
    fresh migrated database). Background workers commit, so these apps cannot use the rolled-back
    sessions of :func:`store_client`; module-scoped fixtures share one app per backend.
    """
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('live') / 'runs.db'}"
        upgrade_to_head(url)
    else:
        url = str(request.getfixturevalue("make_postgres_database")())
    options: dict[str, Any] = {"heartbeat_interval_s": 0.1, "heartbeat_timeout_s": 5.0}
    options.update(settings)
    try:
        with TestClient(create_app(Settings(database_url=url, **options))) as client:
            yield client
    finally:
        dispose_engines(url)


def wait_for(client: TestClient, path: str, timeout: float = 120.0) -> dict[str, Any]:
    """GET ``path`` (a run or an inspection) until its status is terminal; the document."""
    deadline = time.monotonic() + timeout
    while True:
        doc = client.get(path).json()
        if doc["status"] in TERMINAL:
            return dict(doc)
        assert time.monotonic() < deadline, doc
        time.sleep(0.05)


def assert_not_inspectable(res: Any, status: str) -> None:
    """The 409 problem of inspecting a run whose status is ``status``."""
    assert res.status_code == 409, (status, res.text)
    assert res.headers["content-type"] == "application/problem+json"
    problem = res.json()
    assert problem["status"] == 409 and f"the run is {status}" in problem["detail"]
    assert problem["field"] == "run_id"


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
