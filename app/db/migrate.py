"""Run the Alembic migrations from code (``evalserve migrate``, tests), from any working directory.

The Alembic files live beside the package in the source tree: ``alembic.ini`` and
``migrations/`` at the repository root.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from app.db.session import ensure_sqlite_parent_dir

__all__ = ["ALEMBIC_INI", "MIGRATIONS_DIR", "alembic_config", "upgrade_to_head"]

_ROOT = Path(__file__).resolve().parents[2]
ALEMBIC_INI = _ROOT / "alembic.ini"
MIGRATIONS_DIR = _ROOT / "migrations"


def alembic_config(database_url: str | None = None) -> Config:
    """An Alembic config for this project's migrations.

    ``database_url`` overrides ``EVALSERVE_DATABASE_URL``; it is handed to ``migrations/env.py``
    through ``config.attributes``, never written into the ini (which would need ``%`` escaping
    and could leak a password into logs). Logging is left as the caller configured it.
    """
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["configure_logger"] = False
    if database_url is not None:
        config.attributes["database_url"] = database_url
    return config


def upgrade_to_head(database_url: str | None = None) -> None:
    """Apply every migration not yet applied (``alembic upgrade head``); idempotent.

    ``database_url`` defaults to ``EVALSERVE_DATABASE_URL`` (see :mod:`app.config`). A SQLite
    file's folder is created first.
    """
    if database_url is not None:
        ensure_sqlite_parent_dir(database_url)
    command.upgrade(alembic_config(database_url), "head")
