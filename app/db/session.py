"""Engines, sessions and the transaction scope, built from :class:`app.config.Settings`.

One engine (and connection pool) per database URL per process. A unit of work runs inside
:func:`session_scope`, which commits when the block succeeds and rolls back when it raises;
repositories and services never commit themselves.
"""

from __future__ import annotations

import functools
import json
import math
import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from app.config import Settings, get_settings
from app.errors import ServiceUnavailable

__all__ = [
    "dispose_engines",
    "get_engine",
    "get_session",
    "get_sessionmaker",
    "normalize_url",
    "ping",
    "session_scope",
]

#: JSON as stored: NaN and infinities are refused (PostgreSQL's jsonb cannot hold them, so SQLite
#: must not either); non-ASCII text is kept as is.
json_dumps = functools.partial(json.dumps, allow_nan=False, ensure_ascii=False)


def _json_int(text: str) -> int | float:
    """An integer literal read back from a JSON column; a float where it cannot be an int64.

    jsonb stores numbers as ``numeric`` and prints a float such as ``1e20`` as the integer
    ``100000000000000000000``. Nothing evalserve stores as an integer leaves the 64-bit range
    (counts, ids, epochs), and the API's JSON encoder (orjson) refuses integers beyond it, so
    such a literal is the float it was written as.
    """
    value = int(text)
    return value if -(2**63) <= value < 2**64 else float(text)


#: JSON as read back (both backends): see :func:`_json_int`.
json_loads = functools.partial(json.loads, parse_int=_json_int)

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_sessionmakers: dict[tuple[str, bool], sessionmaker[Session]] = {}
#: Execution option that makes a SQLite transaction begin IMMEDIATE.
_WRITE_OPTION = "evalserve_write"


def normalize_url(url: str | URL) -> URL:
    """Parse a database URL; a bare ``postgresql://`` selects the installed psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def ensure_sqlite_parent_dir(url: str | URL) -> None:
    """Create the folder of a SQLite database file, so a fresh checkout starts without setup."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite" and not is_memory_sqlite(parsed):
        database = parsed.database or ""
        if not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    # pysqlite opens transactions lazily (only before DML) and so breaks SAVEPOINT and read
    # consistency. Hand transaction control to SQLAlchemy: the driver stays in autocommit and the
    # "begin" event emits a real BEGIN. See SQLAlchemy's "Serializable isolation / Savepoints /
    # Transactional DDL" notes for the pysqlite dialect.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
            if not is_memory_sqlite(engine.url):
                # WAL lets readers run while one writer writes; the mode is stored in the file.
                cursor.execute("PRAGMA journal_mode=WAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A deferred transaction that reads and then writes fails at once with SQLITE_BUSY
        # when another writer committed in between (a stale snapshot; busy_timeout cannot
        # help), e.g. a cancel request racing the in-process runner's metric writes. Sessions
        # that mean to write take the lock up front (BEGIN IMMEDIATE) and wait their turn.
        immediate = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _create_engine(settings: Settings) -> Engine:
    url = normalize_url(settings.database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        ensure_sqlite_parent_dir(url)
        options: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
        if is_memory_sqlite(url):
            # One shared connection, or every checkout would see its own empty database.
            options["poolclass"] = StaticPool
        engine = create_engine(
            url, json_serializer=json_dumps, json_deserializer=json_loads, **options
        )
        _configure_sqlite(engine, busy_timeout_ms=int(settings.db_pool_timeout_s * 1000))
        return engine
    connect_args: dict[str, Any] = {}
    if backend == "postgresql":
        # Fail fast on an unreachable host instead of waiting for the OS TCP timeout.
        connect_args["connect_timeout"] = max(1, math.ceil(settings.db_pool_timeout_s))
    return create_engine(
        url,
        json_serializer=json_dumps,
        json_deserializer=json_loads,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


def _settings_for(target: Settings | str | None) -> Settings:
    """``Settings`` as given; a bare URL gets the environment's pool options."""
    if target is None:
        return get_settings()
    if isinstance(target, str):
        return get_settings().model_copy(update={"database_url": target})
    return target


def get_engine(settings: Settings | str | None = None) -> Engine:
    """The process-wide engine for a database: ``Settings``, a URL string (pool options from
    the environment) or ``None`` (:func:`get_settings`).

    Cached per URL: the pool options of the first call for a URL win.
    """
    settings = _settings_for(settings)
    key = normalize_url(settings.database_url).render_as_string(hide_password=False)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _create_engine(settings)
        return engine


def get_sessionmaker(
    settings: Settings | str | None = None, *, write: bool = False
) -> sessionmaker[Session]:
    """The session factory bound to :func:`get_engine`'s engine, cached per URL.

    ``write=True`` sessions begin with ``BEGIN IMMEDIATE`` on SQLite (no effect elsewhere):
    see the "begin" hook. The connection is still checked out lazily, at first use.
    ``expire_on_commit=False`` keeps loaded rows readable after the commit, when the API turns
    them into response bodies.
    """
    engine = get_engine(settings)
    key = (engine.url.render_as_string(hide_password=False), write)
    with _lock:
        factory = _sessionmakers.get(key)
        if factory is None:
            bind = engine.execution_options(**{_WRITE_OPTION: True}) if write else engine
            factory = _sessionmakers[key] = sessionmaker(bind=bind, expire_on_commit=False)
        return factory


def dispose_engines(url: str | URL | None = None) -> None:
    """Close the pooled connections of one cached engine (``url``) or of all, and forget them."""
    key = None if url is None else normalize_url(url).render_as_string(hide_password=False)
    with _lock:
        keys = list(_engines) if key is None else [key]
        engines = [_engines.pop(k) for k in keys if k in _engines]
        for k in keys:
            _sessionmakers.pop((k, False), None)
            _sessionmakers.pop((k, True), None)
    for engine in engines:
        engine.dispose()


@contextmanager
def session_scope(
    settings: Settings | str | None = None,
    *,
    factory: sessionmaker[Session] | None = None,
    write: bool = True,
) -> Iterator[Session]:
    """A session in a transaction: committed if the block succeeds, rolled back if it raises.

    ``settings`` is as for :func:`get_engine`; ``factory`` replaces the default session
    factory (tests bind one to a rolled-back connection); ``write=False`` marks a read-only
    scope, which on SQLite does not take the write lock. A lost or unreachable database, a
    lock timeout or an exhausted pool (``OperationalError``, pool ``TimeoutError``) becomes
    :class:`ServiceUnavailable` (503, retryable), without the driver's message, which may name
    hosts and users; the original stays chained as ``__cause__`` for the logs.
    """
    factory = factory or get_sessionmaker(settings, write=write)
    try:
        with factory.begin() as session:
            yield session
    except (OperationalError, PoolTimeoutError) as exc:
        raise ServiceUnavailable("The database is temporarily unavailable; retry later.") from exc


def get_session(
    settings: Settings | str | None = None,
    *,
    factory: sessionmaker[Session] | None = None,
    write: bool = True,
) -> Generator[Session, None, None]:
    """Generator form of :func:`session_scope`, for a FastAPI dependency with ``yield``."""
    with session_scope(settings, factory=factory, write=write) as session:
        yield session


def ping(engine: Engine) -> bool:
    """Whether the database answers a trivial query now (readiness probe); never raises."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True
