"""Account lines: the account-wide call caps (REDIALER_MAX_CONCURRENT_CALLS and
REDIALER_MAX_CALLS_PER_SECOND) keep their slots and line in the campaign caps' tables under the
scope "~account", with whose call each is and its campaign's priority (the fair share). Existing
rows are campaign rows: the new columns stay null.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 01:43:50.997912
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("call_line", schema=None) as batch_op:
        batch_op.add_column(sa.Column("group_id", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("priority", sa.Float(), nullable=True))

    with op.batch_alter_table("call_slots", schema=None) as batch_op:
        batch_op.add_column(sa.Column("group_id", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("priority", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("call_slots", schema=None) as batch_op:
        batch_op.drop_column("priority")
        batch_op.drop_column("group_id")

    with op.batch_alter_table("call_line", schema=None) as batch_op:
        batch_op.drop_column("priority")
        batch_op.drop_column("group_id")
