"""Real providers: the calls they placed and the status callbacks taken (deduplicated), and
whether an attempt left a voicemail message. Existing call records get message_left false.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 22:01:13.740525
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "provider_callbacks",
        sa.Column("call_sid", sa.String(), nullable=False),
        sa.Column("sequence_number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("call_sid", "sequence_number"),
    )
    op.create_table(
        "provider_calls",
        sa.Column("call_sid", sa.String(), nullable=False),
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.Column("answered_by", sa.String(), nullable=True),
        sa.Column("sip_response_code", sa.Integer(), nullable=True),
        sa.Column("duration", sa.Integer(), nullable=True),
        sa.Column("message_left", sa.Boolean(), nullable=False),
        sa.Column("answer_twiml", sa.String(), nullable=True),
        sa.Column("voicemail_twiml", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("call_sid"),
    )
    with op.batch_alter_table("provider_calls", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_provider_calls_idempotency_key"), ["idempotency_key"], unique=False
        )

    with op.batch_alter_table("call_records", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("message_left", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("call_records", schema=None) as batch_op:
        batch_op.drop_column("message_left")

    with op.batch_alter_table("provider_calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_provider_calls_idempotency_key"))

    op.drop_table("provider_calls")
    op.drop_table("provider_callbacks")
