"""runs.dispatched_at: when a queued run was last sent to the broker

Revision ID: 20261125_0004
Revises: 20261125_0003
Create Date: 2026-11-25

Lets the reaper send again a run whose message never reached the broker (the API died between
the commit and the send).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261125_0004"
down_revision: str | Sequence[str] | None = "20261125_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("dispatched_at")
