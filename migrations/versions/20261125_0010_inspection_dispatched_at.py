"""inspections.dispatched_at: when a queued inspection was last sent to the broker

Revision ID: 20261125_0010
Revises: 20261125_0009
Create Date: 2026-11-25

As runs.dispatched_at (revision 0004): lets the reaper send again an inspection whose message
never reached the broker (the API died between the commit and the send).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261125_0010"
down_revision: str | Sequence[str] | None = "20261125_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "inspections", sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("inspections") as batch:
        batch.drop_column("dispatched_at")
