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
import warnings
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
    "hold_engine",
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
#: How many holders (:func:`hold_engine`: running apps) each cached engine has.
_holders: dict[str, int] = {}
#: Execution option that makes a SQLite transaction begin IMMEDIATE.
_WRITE_OPTION = "evalserve_write"


def normalize_url(url: str | URL) -> URL:
    """Parse a database URL; a bare ``postgresql://`` selects the installed psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _key(url: str | URL) -> str:
    """The cache key of a database URL (normalized, password included)."""
    return normalize_url(url).render_as_string(hide_password=False)


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


def _engine_locked(settings: Settings) -> Engine:
    """The cached engine of ``settings``' URL, created if needed; the caller holds ``_lock``."""
    key = _key(settings.database_url)
    engine = _engines.get(key)
    if engine is None:
        engine = _engines[key] = _create_engine(settings)
    return engine


def get_engine(settings: Settings | str | None = None) -> Engine:
    """The process-wide engine for a database: ``Settings``, a URL string (pool options from
    the environment) or ``None`` (:func:`get_settings`).

    Cached per URL: the pool options of the first call for a URL win.
    """
    settings = _settings_for(settings)
    with _lock:
        return _engine_locked(settings)


def get_sessionmaker(
    settings: Settings | str | None = None, *, write: bool = False
) -> sessionmaker[Session]:
    """The session factory bound to :func:`get_engine`'s engine, cached per URL.

    ``write=True`` sessions begin with ``BEGIN IMMEDIATE`` on SQLite (no effect elsewhere):
    see the "begin" hook. The connection is still checked out lazily, at first use.
    ``expire_on_commit=False`` keeps loaded rows readable after the commit, when the API turns
    them into response bodies.
    """
    settings = _settings_for(settings)
    # One critical section: a factory is never cached for an engine that a concurrent
    # dispose_engines() has just dropped (its sessions would fill a pool nobody disposes).
    with _lock:
        engine = _engine_locked(settings)
        key = (_key(settings.database_url), write)
        factory = _sessionmakers.get(key)
        if factory is None:
            bind = engine.execution_options(**{_WRITE_OPTION: True}) if write else engine
            factory = _sessionmakers[key] = sessionmaker(bind=bind, expire_on_commit=False)
        return factory


def _pop_locked(keys: list[str]) -> list[Engine]:
    """Forget the engines (and their session factories) of ``keys``; the caller holds ``_lock``."""
    engines = [_engines.pop(k) for k in keys if k in _engines]
    for k in keys:
        _sessionmakers.pop((k, False), None)
        _sessionmakers.pop((k, True), None)
    return engines


def _dispose(engines: list[Engine]) -> None:
    """Close the pooled connections of ``engines``.

    A connection still checked out at that moment (a thread that is still working) is not
    closed by ``dispose()``: it goes back to the discarded pool when its user is done and stays
    open until the garbage collector finds it, whose timing then fails some unrelated test
    with psycopg's "was deleted while still open". That is a bug in whoever disposed too
    early, so it is reported here, at once, as a ``ResourceWarning`` (an error in the tests).
    """
    busy = []
    for engine in engines:
        checkedout = getattr(engine.pool, "checkedout", None)  # QueuePool; not StaticPool
        in_use = int(checkedout()) if callable(checkedout) else 0
        engine.dispose()
        if in_use:
            busy.append(f"{engine.url!r}: {in_use}")
    if busy:
        warnings.warn(
            "engine disposed with connections still checked out (they are left to the garbage "
            f"collector): {', '.join(busy)}",
            ResourceWarning,
            stacklevel=3,
        )


def dispose_engines(url: str | URL | None = None) -> None:
    """Close the pooled connections of one cached engine (``url``) or of all, and forget them.

    Call it only when nothing uses the engine any more: see :func:`hold_engine` and
    :func:`_dispose`.
    """
    with _lock:
        engines = _pop_locked(list(_engines) if url is None else [_key(url)])
    _dispose(engines)


@contextmanager
def hold_engine(url: str | URL) -> Iterator[None]:
    """Use the process-wide engine of ``url`` for the block; the last holder to leave disposes it.

    An app holds its database's engine from startup to shutdown (:func:`app.main.create_app`).
    The engine is shared by everything in the process that opens sessions on that URL, so one
    app's shutdown must not dispose it while another app on the same database is still running
    (several apps share a process in the tests): its reapers, runners or requests would have
    connections checked out, which a dispose then strands.
    """
    key = _key(url)
    with _lock:
        _holders[key] = _holders.get(key, 0) + 1
    try:
        yield
    finally:
        with _lock:
            left = _holders[key] - 1
            if left:
                _holders[key] = left
                engines = []
            else:
                del _holders[key]
                engines = _pop_locked([key])
        _dispose(engines)


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
