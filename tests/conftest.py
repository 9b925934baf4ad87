"""Fixtures shared by every test folder: real, migrated databases on SQLite and PostgreSQL.

Databases are created once per test session and built by the real Alembic migrations
(:func:`app.db.migrate.upgrade_to_head`), never by ``create_all``.

Isolation (the "join an external transaction" recipe of SQLAlchemy 2.0): each test gets
``db_connection``, a connection with an open outer transaction that is rolled back when the test
ends. Sessions made by ``db_sessionmaker`` / ``db_session`` join it with
``join_transaction_mode="create_savepoint"``, so code under test may ``commit()`` or
``rollback()`` freely: those act on a SAVEPOINT and nothing reaches the database for the next
test. API tests point the session dependency at the same connection::

    app.dependency_overrides[deps.get_db] = lambda: get_session(factory=db_sessionmaker)

Code that opens its own connections (a second engine, a worker thread with its own session)
does not see the test's uncommitted rows; such tests need their own database
(``make_postgres_database``, or a SQLite file under ``tmp_path``).

PostgreSQL: the server at 127.0.0.1:5432 (user ``postgres``, trust auth). If it is unreachable,
PostgreSQL tests are skipped locally and fail when ``CI=true``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.db.session import dispose_engines, get_engine

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
PG_ADMIN_DATABASE = "test"

BACKENDS = ["sqlite", "postgresql"]


def _postgres_admin_connection() -> psycopg.Connection:
    """An autocommit connection to the maintenance database, or skip/fail if there is none."""
    try:
        return psycopg.connect(
            host=PG_HOST,
            port=PG_PORT,
            user=PG_USER,
            dbname=PG_ADMIN_DATABASE,
            autocommit=True,
            connect_timeout=5,
        )
    except psycopg.OperationalError as exc:
        reason = (
            f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} as user {PG_USER!r} "
            f"(database {PG_ADMIN_DATABASE!r}): {exc}".strip()
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}\nCI must start PostgreSQL before the tests.", pytrace=False)
        pytest.skip(reason)


def postgres_url_for(database: str) -> str:
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


@pytest.fixture(scope="session")
def make_postgres_database() -> Iterator[Callable[..., str]]:
    """A factory: ``make_postgres_database(migrate=True) -> url`` of a new, uniquely named
    database (migrated to head unless ``migrate=False``). All are dropped at session end."""
    admin = _postgres_admin_connection()
    created: list[str] = []

    def execute(statement: sql.Composed) -> None:
        nonlocal admin
        try:
            admin.execute(statement)
        except psycopg.OperationalError:
            if not admin.broken:
                raise
            # The server restarted since (tests/integration/test_postgres_restart.py).
            admin = _postgres_admin_connection()
            admin.execute(statement)

    def make(*, migrate: bool = True) -> str:
        name = f"evalserve_test_{uuid.uuid4().hex[:16]}"
        execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        url = postgres_url_for(name)
        if migrate:
            upgrade_to_head(url)
        return url

    try:
        yield make
    finally:
        try:
            for name in created:
                dispose_engines(postgres_url_for(name))
                execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        finally:
            admin.close()


@pytest.fixture(scope="session")
def postgres_url(make_postgres_database: Callable[..., str]) -> str:
    """SQLAlchemy URL of a fresh PostgreSQL database migrated to head, shared by the session."""
    return make_postgres_database()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SQLAlchemy URL of a fresh SQLite file migrated to head, shared by the session."""
    path: Path = tmp_path_factory.mktemp("sqlite") / "evalserve.db"
    url = f"sqlite:///{path}"
    upgrade_to_head(url)
    try:
        yield url
    finally:
        dispose_engines(url)


@pytest.fixture(scope="session", params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated database on each backend in turn (tests run once per backend)."""
    fixture = {"sqlite": "sqlite_url", "postgresql": "postgres_url"}[request.param]
    return str(request.getfixturevalue(fixture))


@pytest.fixture(scope="session")
def db_settings(db_url: str) -> Settings:
    return Settings(database_url=db_url)


@pytest.fixture(scope="session")
def db_engine(db_settings: Settings) -> Engine:
    """The service's own engine for ``db_url`` (same pool options and SQLite pragmas)."""
    return get_engine(db_settings)


@pytest.fixture
def db_connection(db_engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that is rolled back after the test."""
    with db_engine.connect() as connection:
        transaction = connection.begin()
        try:
            yield connection
        finally:
            if transaction.is_active:
                transaction.rollback()


@pytest.fixture
def db_sessionmaker(db_connection: Connection) -> sessionmaker[Session]:
    """Session factory on the test's connection; a commit releases a SAVEPOINT only."""
    return sessionmaker(
        bind=db_connection,
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
    )


@pytest.fixture
def db_session(db_sessionmaker: sessionmaker[Session]) -> Iterator[Session]:
    """A session for the test, rolled back with ``db_connection``."""
    with db_sessionmaker() as session:
        yield session
