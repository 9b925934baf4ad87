"""runs.api_key_id (who started a run) and runs.checkpoint (resumable state at an epoch end)

Revision ID: 20261125_0007
Revises: 20261125_0006
Create Date: 2026-11-25

``api_key_id`` lets the service cap concurrent training runs per key; ``checkpoint`` holds the
model and optimizer state after ``checkpoint_epoch``, so a run whose worker was asked to stop can
be resumed from there instead of starting over.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261125_0007"
down_revision: str | Sequence[str] | None = "20261125_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN, no batch copy of the runs table. No foreign key on api_key_id: keys are
    # revoked, never deleted, and SQLite cannot add a constraint to an existing table.
    op.add_column("runs", sa.Column("api_key_id", sa.String(length=36), nullable=True))
    op.add_column("runs", sa.Column("checkpoint", sa.LargeBinary(), nullable=True))
    op.add_column("runs", sa.Column("checkpoint_epoch", sa.Integer(), nullable=True))
    op.create_index(op.f("ix_runs_api_key_id_status"), "runs", ["api_key_id", "status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_runs_api_key_id_status"), table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("checkpoint_epoch")
        batch.drop_column("checkpoint")
        batch.drop_column("api_key_id")
