"""Engines and transaction scopes built from Settings, on real SQLite files and PostgreSQL."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.db.models import Evaluation
from app.db.repositories import create_evaluation
from app.db.session import (
    dispose_engines,
    get_engine,
    get_session,
    get_sessionmaker,
    hold_engine,
    normalize_url,
    ping,
    session_scope,
)
from app.errors import ServiceUnavailable

UNREACHABLE_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"


@pytest.fixture
def migrated_url(empty_db_url: str) -> Iterator[str]:
    """A database of its own, for tests whose commits must really happen."""
    upgrade_to_head(empty_db_url)
    yield empty_db_url
    dispose_engines(empty_db_url)


def _count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(Evaluation)) or 0)


def _add(session: Session, name: str = "x") -> str:
    return create_evaluation(
        session, task="binary", n_samples=1, report={}, name=name, headline={}
    ).id


def test_normalize_url_picks_psycopg_for_bare_postgresql_urls() -> None:
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"


def test_get_engine_is_cached_per_url(tmp_path: Path) -> None:
    a, b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    try:
        engine = get_engine(Settings(database_url=a))
        assert get_engine(Settings(database_url=a)) is engine
        assert get_engine(a) is engine  # a bare URL string names the same engine
        assert get_engine(Settings(database_url=b)) is not engine
        assert get_sessionmaker(Settings(database_url=a)) is get_sessionmaker(
            Settings(database_url=a)
        )
        dispose_engines(a)
        assert get_engine(Settings(database_url=a)) is not engine
    finally:
        dispose_engines(a)
        dispose_engines(b)


def test_the_last_app_holding_an_engine_disposes_it(tmp_path: Path) -> None:
    """Two apps on one database share the engine: the first to stop must not dispose it."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    try:
        with hold_engine(url):
            engine = get_engine(url)
            with hold_engine(url):  # a second app on the same database
                assert get_engine(url) is engine
            assert get_engine(url) is engine  # still the first app's
            with get_sessionmaker(url)() as session:  # and still usable
                assert session.scalar(text("SELECT 1")) == 1
        assert get_engine(url) is not engine  # the last holder disposed it
    finally:
        dispose_engines(url)


def test_disposing_an_engine_with_a_connection_checked_out_is_a_resource_warning(
    tmp_path: Path,
) -> None:
    """The stranded connection would be closed by the garbage collector, failing some later
    test; the warning names the early dispose instead."""
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    connection = get_engine(url).connect()
    try:
        with pytest.warns(ResourceWarning, match="1"):
            dispose_engines(url)
    finally:
        connection.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dispose_engines(url)  # nothing checked out: silent


def test_sqlite_engine_enables_foreign_keys_wal_and_creates_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "does" / "not" / "exist" / "e.db"
    url = f"sqlite:///{path}"
    try:
        engine = get_engine(Settings(database_url=url, db_pool_timeout_s=2.5))
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 2500
        assert path.is_file()
    finally:
        dispose_engines(url)


def test_sqlite_transactions_are_real_so_savepoints_roll_back(tmp_path: Path) -> None:
    # pysqlite alone would let a RELEASEd savepoint commit outside the outer transaction.
    url = f"sqlite:///{tmp_path / 'tx.db'}"
    upgrade_to_head(url)
    engine = get_engine(Settings(database_url=url))
    try:
        with engine.connect() as connection:
            outer = connection.begin()
            factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint")
            with factory.begin() as session:
                _add(session)
            assert connection.scalar(select(func.count()).select_from(Evaluation)) == 1
            outer.rollback()
        assert _count(engine) == 0
    finally:
        dispose_engines(url)


def test_in_memory_sqlite_shares_one_database_across_sessions() -> None:
    url = "sqlite://"
    try:
        engine = get_engine(Settings(database_url=url))
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (x INTEGER)"))
        with session_scope(Settings(database_url=url)) as session:
            session.execute(text("INSERT INTO t VALUES (1)"))
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT count(*) FROM t")) == 1
    finally:
        dispose_engines(url)


def test_postgresql_engine_uses_the_pool_settings(
    make_postgres_database: Callable[..., str],
) -> None:
    # A database of its own: the engine cache keeps the pool options of a URL's first caller.
    url = make_postgres_database(migrate=False)
    settings = Settings(
        database_url=url.replace("postgresql+psycopg", "postgresql"),
        db_pool_size=3,
        db_max_overflow=2,
        db_pool_timeout_s=4.0,
    )
    try:
        engine = get_engine(settings)
        assert engine.url.drivername == "postgresql+psycopg"
        assert engine.pool.size() == 3  # type: ignore[attr-defined]
        assert engine.pool.timeout() == 4.0  # type: ignore[attr-defined]
        assert engine.pool._max_overflow == 2  # type: ignore[attr-defined]
        assert engine.pool._pre_ping is True
        assert ping(engine)
    finally:
        dispose_engines(settings.database_url)


def test_session_scope_commits_on_success_and_rolls_back_on_error(migrated_url: str) -> None:
    settings = Settings(database_url=migrated_url)
    with session_scope(settings) as session:
        kept = _add(session, "kept")

    with pytest.raises(RuntimeError, match="boom"), session_scope(settings) as session:
        _add(session, "dropped")
        session.flush()
        raise RuntimeError("boom")

    with session_scope(settings) as session:
        names = session.scalars(select(Evaluation.name)).all()
        assert session.get(Evaluation, kept) is not None
    assert names == ["kept"]


def test_session_scope_accepts_a_bare_url(migrated_url: str) -> None:
    with session_scope(migrated_url) as session:
        _add(session)
    assert _count(get_engine(migrated_url)) == 1


def test_get_session_commits_when_the_dependency_finishes(migrated_url: str) -> None:
    settings = Settings(database_url=migrated_url)
    dependency = get_session(settings)
    _add(next(dependency))
    with pytest.raises(StopIteration):
        next(dependency)

    failing = get_session(settings)
    _add(next(failing))
    with pytest.raises(ValueError, match="handler failed"):
        failing.throw(ValueError("handler failed"))
    assert _count(get_engine(settings)) == 1


def test_session_scope_uses_a_given_factory(
    db_sessionmaker: sessionmaker[Session], db_connection: object
) -> None:
    with session_scope(factory=db_sessionmaker) as session:
        evaluation_id = _add(session)
    with db_sessionmaker() as other:
        assert other.get(Evaluation, evaluation_id) is not None


def test_database_errors_become_service_unavailable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'unmigrated.db'}"  # no tables: OperationalError
    try:
        with (
            pytest.raises(ServiceUnavailable) as error,
            session_scope(Settings(database_url=url)) as session,
        ):
            session.execute(select(Evaluation)).all()
        assert error.value.status_code == 503
        assert "no such table" not in error.value.detail  # driver text stays in the logs
    finally:
        dispose_engines(url)


def test_unreachable_postgresql_is_unavailable_not_a_crash() -> None:
    settings = Settings(database_url=UNREACHABLE_POSTGRES, db_pool_timeout_s=1.0)
    try:
        assert ping(get_engine(settings)) is False
        with pytest.raises(ServiceUnavailable), session_scope(settings) as session:
            session.execute(text("SELECT 1"))
    finally:
        dispose_engines(UNREACHABLE_POSTGRES)


def test_ping_is_true_for_a_live_database(db_engine: Engine) -> None:
    assert ping(db_engine) is True


def _sqlite_with_one_evaluation(tmp_path: Path) -> tuple[Settings, str]:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/race.db", db_pool_timeout_s=5)
    upgrade_to_head(settings.database_url)
    with session_scope(settings) as session:
        row = create_evaluation(
            session, task="binary", n_samples=1, report={}, headline={"accuracy": 0.5}
        )
        return settings, row.id


def test_a_deferred_sqlite_transaction_cannot_write_after_another_writer_committed(
    tmp_path: Path,
) -> None:
    # Why write sessions begin IMMEDIATE: the stale-snapshot failure is immediate, not a wait.
    settings, eid = _sqlite_with_one_evaluation(tmp_path)
    try:
        with pytest.raises(ServiceUnavailable), session_scope(settings, write=False) as first:
            first.get(Evaluation, eid)  # a read: the transaction has a snapshot now
            with session_scope(settings) as second:
                second.get(Evaluation, eid).accuracy = 0.7  # type: ignore[union-attr]
            first.get(Evaluation, eid).accuracy = 0.9  # type: ignore[union-attr]
            first.flush()
    finally:
        dispose_engines(settings.database_url)


def test_sqlite_write_sessions_wait_for_each_other_instead_of_failing(tmp_path: Path) -> None:
    settings, eid = _sqlite_with_one_evaluation(tmp_path)
    errors: list[BaseException] = []

    def other_writer() -> None:
        try:
            with session_scope(settings) as session:
                row = session.get(Evaluation, eid)
                assert row is not None
                row.accuracy = (row.accuracy or 0) + 0.1
        except BaseException as exc:
            errors.append(exc)

    try:
        with session_scope(settings) as first:
            row = first.get(Evaluation, eid)  # takes the write lock (BEGIN IMMEDIATE)
            assert row is not None
            thread = threading.Thread(target=other_writer)
            thread.start()
            thread.join(timeout=0.3)  # it is waiting for our lock, not failing
            assert thread.is_alive() and not errors
            row.accuracy = 0.2
        thread.join(timeout=10)
        assert not errors
        with session_scope(settings, write=False) as check:
            assert check.get(Evaluation, eid).accuracy == pytest.approx(0.3)  # type: ignore[union-attr]
    finally:
        dispose_engines(settings.database_url)
