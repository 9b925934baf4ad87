"""The Alembic migrations: they run up and down on both backends and build exactly the models."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool

from app.config import get_settings
from app.db.base import Base, include_object_for
from app.db.migrate import MIGRATIONS_DIR, alembic_config, upgrade_to_head

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()
#: Every table the models declare, plus Alembic's own.
TABLES = set(Base.metadata.tables) | {"alembic_version"}


def _schema_differences(url: str) -> list[Any]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "compare_server_default": True,
                    "include_object": include_object_for(connection.dialect.name),
                },
            )
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def _tables_and_revision(url: str) -> tuple[set[str], str | None]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            revision = MigrationContext.configure(connection).get_current_revision()
            return tables, revision
    finally:
        engine.dispose()


def test_script_directory_has_one_head_named_by_date() -> None:
    scripts = ScriptDirectory.from_config(alembic_config())
    assert scripts.get_heads() == [HEAD]
    for script in scripts.walk_revisions():
        assert re.fullmatch(r"\d{8}_\d{4}", script.revision), script.revision
        assert Path(script.path).name.startswith(f"{script.revision}_")


def test_upgrade_downgrade_upgrade_round_trip(empty_db_url: str) -> None:
    config = alembic_config(empty_db_url)

    command.upgrade(config, "head")
    tables, revision = _tables_and_revision(empty_db_url)
    assert tables == TABLES
    assert revision == HEAD

    command.downgrade(config, "base")
    tables, revision = _tables_and_revision(empty_db_url)
    assert tables == {"alembic_version"}
    assert revision is None

    command.upgrade(config, "head")
    tables, revision = _tables_and_revision(empty_db_url)
    assert tables == TABLES
    assert revision == HEAD
    assert _schema_differences(empty_db_url) == []


def test_migrated_schema_matches_the_models(db_url: str) -> None:
    assert _schema_differences(db_url) == []


def test_schema_comparison_reports_drift(empty_db_url: str) -> None:
    # Guards the test above: the comparison must notice a schema that differs from the models.
    upgrade_to_head(empty_db_url)
    engine = create_engine(empty_db_url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(text("DROP INDEX ix_evaluations_rmse"))
    finally:
        engine.dispose()
    differences = _schema_differences(empty_db_url)
    assert [(d[0], d[1].name) for d in differences] == [("add_index", "ix_evaluations_rmse")]


def test_expected_indexes_exist(db_url: str) -> None:
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            indexes = {
                ix["name"]: ix["column_names"]
                for ix in inspect(connection).get_indexes("evaluations")
            }
            dialect = connection.dialect.name
    finally:
        engine.dispose()
    expected = {
        f"ix_evaluations_{c}": [c]
        for c in ("created_at", "task", "name", "model", "accuracy", "roc_auc", "rmse")
    }
    expected["ix_evaluations_model_created_at"] = ["model", "created_at"]
    if dialect == "postgresql":
        expected["ix_evaluations_tags"] = ["tags"]
    assert indexes == expected


def test_upgrade_to_head_is_idempotent_and_independent_of_cwd(
    empty_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    upgrade_to_head(empty_db_url)
    upgrade_to_head(empty_db_url)
    assert _tables_and_revision(empty_db_url) == (TABLES, HEAD)


def test_upgrade_to_head_defaults_to_the_configured_database_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'from_env.db'}"
    monkeypatch.setenv("EVALSERVE_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        upgrade_to_head()
    finally:
        get_settings.cache_clear()
    assert (tmp_path / "nested" / "dir" / "from_env.db").is_file()
    assert _tables_and_revision(url) == (TABLES, HEAD)


@pytest.mark.parametrize(
    ("url", "has_gin_index"),
    [("sqlite://", False), ("postgresql+psycopg://u@localhost/offline", True)],
)
def test_offline_sql_script_renders_per_backend(url: str, has_gin_index: bool) -> None:
    buffer = io.StringIO()
    config = alembic_config(url)
    config.output_buffer = buffer
    command.upgrade(config, "head", sql=True)
    script = buffer.getvalue()
    assert "CREATE TABLE evaluations" in script
    assert ("USING gin (tags jsonb_path_ops)" in script) is has_gin_index


def test_migrations_dir_is_found_relative_to_the_package() -> None:
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert len(list((MIGRATIONS_DIR / "versions").glob(f"{HEAD}_*.py"))) == 1
