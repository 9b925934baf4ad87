"""runs.data_checks: the data checks of a run's training and validation split

Revision ID: 20261125_0011
Revises: 20261125_0010
Create Date: 2026-11-25

Computed by the worker when the run starts training (or on the first request for a run
trained before this revision) and kept with the run, so ``GET /v1/runs/{id}/data-checks``
reads them instead of loading and scanning the data again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261125_0011"
down_revision: str | Sequence[str] | None = "20261125_0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("runs", sa.Column("data_checks", _JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("data_checks")
