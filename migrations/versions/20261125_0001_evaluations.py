"""evaluations: stored evaluation reports with headline metric columns

Revision ID: 20261125_0001
Revises:
Create Date: 2026-11-25

Written by hand and frozen: it does not import the models, which move on with later revisions.
Names follow app.db.base.NAMING_CONVENTION.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261125_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _is_postgresql() -> bool:
    # From the migration context, not op.get_bind(), so `alembic upgrade --sql` works too.
    return op.get_context().dialect.name == "postgresql"


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("task", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("tags", _JSON, server_default=sa.text("'[]'"), nullable=False),
        sa.Column("n_samples", sa.Integer(), nullable=False),
        sa.Column("report", _JSON, nullable=False),
        sa.Column("accuracy", sa.Double(), nullable=True),
        sa.Column("f1", sa.Double(), nullable=True),
        sa.Column("roc_auc", sa.Double(), nullable=True),
        sa.Column("average_precision", sa.Double(), nullable=True),
        sa.Column("log_loss", sa.Double(), nullable=True),
        sa.Column("brier", sa.Double(), nullable=True),
        sa.Column("ece", sa.Double(), nullable=True),
        sa.Column("rmse", sa.Double(), nullable=True),
        sa.Column("mae", sa.Double(), nullable=True),
        sa.Column("r2", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluations")),
        sa.CheckConstraint(
            "task IN ('binary', 'multiclass', 'multilabel', 'regression')",
            name=op.f("ck_evaluations_task"),
        ),
        sa.CheckConstraint("n_samples >= 0", name=op.f("ck_evaluations_n_samples_nonnegative")),
    )
    for column in ("created_at", "task", "name", "model", "accuracy", "roc_auc", "rmse"):
        op.create_index(op.f(f"ix_evaluations_{column}"), "evaluations", [column], unique=False)
    op.create_index(
        op.f("ix_evaluations_model_created_at"),
        "evaluations",
        ["model", "created_at"],
        unique=False,
    )
    if _is_postgresql():
        op.create_index(
            op.f("ix_evaluations_tags"),
            "evaluations",
            ["tags"],
            unique=False,
            postgresql_using="gin",
            postgresql_ops={"tags": "jsonb_path_ops"},
        )


def downgrade() -> None:
    # Dropping the table drops its indexes and constraints with it, on both backends.
    op.drop_table("evaluations")
