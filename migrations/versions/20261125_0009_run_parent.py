"""runs.parent_id: the child runs of a domain-based validation (one fit per held-out domain)

Revision ID: 20261125_0009
Revises: 20261125_0008
Create Date: 2026-11-25

Written by hand and frozen: it does not import the models. A nullable column and its index;
on PostgreSQL also the foreign key to runs.id, ON DELETE CASCADE (``fk_runs_parent_id_runs``,
app.db.base.NAMING_CONVENTION). SQLite cannot add a constraint to an existing table, and the
alternative, a batch copy of the runs table, is not worth it for a development database (an
inline ``REFERENCES`` on ADD COLUMN is not reflected with its name and ON DELETE action, so the
schema could not be checked against the models).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261125_0009"
down_revision: str | Sequence[str] | None = "20261125_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FK = "fk_runs_parent_id_runs"


def upgrade() -> None:
    # Plain ADD COLUMN, no batch copy of the runs table. The foreign key exists on PostgreSQL
    # only: SQLite cannot add a constraint to an existing table (as for api_key_id in 0007).
    op.add_column("runs", sa.Column("parent_id", sa.String(length=36), nullable=True))
    if op.get_context().dialect.name == "postgresql":
        op.create_foreign_key(op.f(_FK), "runs", "runs", ["parent_id"], ["id"], ondelete="CASCADE")
    op.create_index(op.f("ix_runs_parent_id"), "runs", ["parent_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_runs_parent_id"), table_name="runs")
    if op.get_context().dialect.name == "postgresql":
        op.drop_constraint(op.f(_FK), "runs", type_="foreignkey")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("parent_id")
