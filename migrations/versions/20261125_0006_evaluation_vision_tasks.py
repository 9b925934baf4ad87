"""evaluations.task admits detection and segmentation

Revision ID: 20261125_0006
Revises: 20261125_0005
Create Date: 2026-11-25

Detection (COCO metrics) and segmentation (pixel confusion) reports are stored beside the
classification and regression ones, so the task check constraint grows two values. SQLite cannot
alter a CHECK constraint: batch mode copies the table (foreign keys stay off while migrating, see
``env.py``). Offline (``--sql``) there is no table to reflect, so the table as revision 0001 made
it is handed to batch mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261125_0006"
down_revision: str | Sequence[str] | None = "20261125_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = ("binary", "multiclass", "multilabel", "regression")
_NEW = (*_OLD, "detection", "segmentation")
_METRICS = ("accuracy", "f1", "roc_auc", "average_precision", "log_loss")
_METRICS += ("brier", "ece", "rmse", "mae", "r2")
_INDEXED = ("created_at", "task", "name", "model", "accuracy", "roc_auc", "rmse")


def _check(tasks: tuple[str, ...]) -> str:
    return "task IN ({})".format(", ".join(f"'{t}'" for t in tasks))


def _evaluations_as_created(tasks: tuple[str, ...]) -> sa.Table:
    """The SQLite table of revision 0001 (JSON columns are plain JSON there)."""
    return sa.Table(
        "evaluations",
        sa.MetaData(),
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.Column("task", sa.String(20), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("model", sa.String(200)),
        sa.Column("tags", sa.JSON(), server_default=sa.text("'[]'"), nullable=False),
        sa.Column("n_samples", sa.Integer(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        *(sa.Column(name, sa.Double()) for name in _METRICS),
        sa.CheckConstraint(_check(tasks), name=op.f("ck_evaluations_task")),
        sa.CheckConstraint("n_samples >= 0", name=op.f("ck_evaluations_n_samples_nonnegative")),
        *(sa.Index(op.f(f"ix_evaluations_{column}"), column) for column in _INDEXED),
        sa.Index(op.f("ix_evaluations_model_created_at"), "model", "created_at"),
    )


def _replace_task_check(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    context = op.get_context()
    copy_from = (
        _evaluations_as_created(old)
        if context.as_sql and context.dialect.name == "sqlite"
        else None
    )
    with op.batch_alter_table("evaluations", copy_from=copy_from) as batch:
        batch.drop_constraint(op.f("ck_evaluations_task"), type_="check")
        batch.create_check_constraint("task", _check(new))


def upgrade() -> None:
    _replace_task_check(_OLD, _NEW)


def downgrade() -> None:
    # The old constraint cannot hold these rows; downgrading removes them on purpose.
    op.execute("DELETE FROM evaluations WHERE task IN ('detection', 'segmentation')")
    _replace_task_check(_NEW, _OLD)
