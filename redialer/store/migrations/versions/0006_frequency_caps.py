"""Frequency caps and deferral evidence: `number_calls` holds a row per call to a number across
every campaign (REDIALER_MAX_CALLS_PER_NUMBER is enforced from it), `deferrals` a row per attempt
and rule that moved it (`redialer report` counts them). Both start empty: calls placed before
were never counted per number, and a deferral never recorded cannot be made up.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 06:22:50.614822
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "deferrals",
        sa.Column("campaign_id", sa.String(), nullable=False),
        sa.Column("phone", sa.String(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("moved_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("moved_to", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "phone", "attempt", "reason", "rule"),
    )
    op.create_table(
        "number_calls",
        sa.Column("holder", sa.String(), nullable=False),
        sa.Column("number_key", sa.String(), nullable=False),
        sa.Column("called_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("holder"),
    )
    with op.batch_alter_table("number_calls", schema=None) as batch_op:
        batch_op.create_index("ix_number_calls_window", ["number_key", "called_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("number_calls", schema=None) as batch_op:
        batch_op.drop_index("ix_number_calls_window")

    op.drop_table("number_calls")
    op.drop_table("deferrals")
