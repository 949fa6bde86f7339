"""Dial ledger: redialer's own record of each call it asked for (exactly once per key), and
when each campaign recipient's next call is due (the campaign sleeps until the earliest).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 21:44:54.194951
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "dial_intents",
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("phone", sa.String(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("call_id", sa.String(), nullable=True),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("adoptions", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("idempotency_key"),
    )
    with op.batch_alter_table("campaign_recipients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaign_recipients", schema=None) as batch_op:
        batch_op.drop_column("next_attempt_at")

    op.drop_table("dial_intents")
