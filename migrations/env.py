"""Alembic environment: migrates the database named by EVALSERVE_DATABASE_URL.

A caller may set ``config.attributes["database_url"]`` (see :mod:`app.db.migrate`) or hand over
an open ``config.attributes["connection"]``; the latter runs inside the caller's transaction.
"""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

import app.db.models  # noqa: F401 - registers every table on Base.metadata
from app.db.base import Base, include_object_for
from app.db.session import ensure_sqlite_parent_dir, normalize_url

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _database_url() -> str:
    url = config.attributes.get("database_url")
    if url is None:
        from app.config import get_settings

        url = get_settings().database_url
    return normalize_url(url).render_as_string(hide_password=False)


def _options(dialect_name: str) -> dict[str, Any]:
    return {
        "target_metadata": target_metadata,
        # SQLite cannot ALTER most things: batch mode copies the table instead.
        "render_as_batch": dialect_name == "sqlite",
        "compare_type": True,
        "include_object": include_object_for(dialect_name),
    }


def run_migrations_offline() -> None:
    """Emit the SQL script (``alembic upgrade head --sql``) without connecting."""
    url = _database_url()
    context.configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **_options(normalize_url(url).get_backend_name()),
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    context.configure(connection=connection, **_options(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    url = _database_url()
    ensure_sqlite_parent_dir(url)
    # A plain engine, not the service's: on SQLite, foreign keys stay OFF here (the default),
    # because batch mode drops and recreates tables, which must not fire ON DELETE actions.
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            _run_on(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
