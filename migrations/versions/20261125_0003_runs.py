"""runs: training runs, their per-step metrics, and uploaded datasets

Revision ID: 20261125_0003
Revises: 20261125_0002
Create Date: 2026-11-25

Written by hand and frozen: it does not import the models. Names follow
app.db.base.NAMING_CONVENTION.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261125_0003"
down_revision: str | Sequence[str] | None = "20261125_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _is_postgresql() -> bool:
    return op.get_context().dialect.name == "postgresql"


def _created_at() -> sa.Column[object]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(length=36), nullable=False),
        _created_at(),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("format", sa.String(length=20), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("columns", _JSON, nullable=False),
        sa.Column("target_summary", _JSON, nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.CheckConstraint(
            "format IN ('csv', 'parquet', 'arrow')", name=op.f("ck_datasets_format")
        ),
        sa.CheckConstraint("n_rows >= 0", name=op.f("ck_datasets_n_rows_nonnegative")),
    )
    for column in ("created_at", "name"):
        op.create_index(op.f(f"ix_datasets_{column}"), "datasets", [column], unique=False)

    op.create_table(
        "runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        _created_at(),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("tags", _JSON, server_default=sa.text("'[]'"), nullable=False),
        sa.Column("task", sa.String(length=20), nullable=False),
        sa.Column("external", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("queue", sa.String(length=200), nullable=True),
        sa.Column("spec", _JSON, nullable=True),
        sa.Column("data", _JSON, nullable=False),
        sa.Column("dataset_id", sa.String(length=36), nullable=True),
        sa.Column("val_dataset_id", sa.String(length=36), nullable=True),
        sa.Column("inline_data", sa.LargeBinary(), nullable=True),
        sa.Column("epoch", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("total_epochs", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("metrics_seq", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("device", sa.String(length=50), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("summary", _JSON, nullable=True),
        sa.Column("n_features", sa.Integer(), nullable=True),
        sa.Column("state_dict", sa.LargeBinary(), nullable=True),
        sa.Column("evaluation_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_runs_dataset_id_datasets"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["val_dataset_id"],
            ["datasets.id"],
            name=op.f("fk_runs_val_dataset_id_datasets"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["evaluation_id"],
            ["evaluations.id"],
            name=op.f("fk_runs_evaluation_id_evaluations"),
            ondelete="SET NULL",
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name=op.f("ck_runs_status"),
        ),
        sa.CheckConstraint(
            "task IN ('binary', 'multiclass', 'regression')", name=op.f("ck_runs_task")
        ),
    )
    for column in ("created_at", "name", "status", "dataset_id", "val_dataset_id", "evaluation_id"):
        op.create_index(op.f(f"ix_runs_{column}"), "runs", [column], unique=False)
    op.create_index(
        op.f("ix_runs_status_heartbeat_at"), "runs", ["status", "heartbeat_at"], unique=False
    )
    if _is_postgresql():
        op.create_index(
            op.f("ix_runs_tags"),
            "runs",
            ["tags"],
            unique=False,
            postgresql_using="gin",
            postgresql_ops={"tags": "jsonb_path_ops"},
        )

    op.create_table(
        "run_metrics",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_metrics")),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_run_metrics_run_id_runs"),
            ondelete="CASCADE",
        ),
        # Also the index of the history queries: (run_id, name, step).
        sa.UniqueConstraint("run_id", "name", "step", name=op.f("uq_run_metrics_run_id_name_step")),
    )


def downgrade() -> None:
    # Dropping a table drops its indexes and constraints with it, on both backends.
    op.drop_table("run_metrics")
    op.drop_table("runs")
    op.drop_table("datasets")
