"""calibrators: fitted calibrators stored to be applied later

Revision ID: 20261125_0002
Revises: 20261125_0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261125_0002"
down_revision: str | Sequence[str] | None = "20261125_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "calibrators",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("task", sa.String(length=20), nullable=False),
        sa.Column("n_classes", sa.Integer(), nullable=False),
        sa.Column("score_type", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("tags", _JSON, server_default=sa.text("'[]'"), nullable=False),
        sa.Column("n_samples", sa.Integer(), nullable=False),
        sa.Column("state", _JSON, nullable=False),
        sa.Column("report", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calibrators")),
        sa.CheckConstraint("task IN ('binary', 'multiclass')", name=op.f("ck_calibrators_task")),
        sa.CheckConstraint("n_samples >= 0", name=op.f("ck_calibrators_n_samples_nonnegative")),
    )
    for column in ("created_at", "method", "name", "model"):
        op.create_index(op.f(f"ix_calibrators_{column}"), "calibrators", [column], unique=False)


def downgrade() -> None:
    for column in ("model", "name", "method", "created_at"):
        op.drop_index(op.f(f"ix_calibrators_{column}"), table_name="calibrators")
    op.drop_table("calibrators")
