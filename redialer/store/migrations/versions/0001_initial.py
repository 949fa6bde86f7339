"""initial: the schema of redialer 0.1.0

Exactly what 0.1.0's `SQLModel.metadata.create_all` made (a 0.1.0 store, which has no
`alembic_version`, is taken as this revision by `redialer db upgrade`). Generated from the 0.1.0
models and reviewed by hand: `UtcDateTime` is written as the `DateTime(timezone=True)` it stores,
sqlmodel's `AutoString` as `String`.

Revision ID: 0001
Revises:
Create Date: 2026-01-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "call_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("campaign_id", sa.String(), nullable=True),
        sa.Column("phone", sa.String(), nullable=False),
        sa.Column("retry_group_id", sa.String(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("call_id", sa.String(), nullable=True),
        sa.Column("dialed", sa.Boolean(), nullable=False),
        sa.Column("variables", sa.JSON(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index("ix_call_records_campaign_id", "call_records", ["campaign_id"])
    op.create_index("ix_call_records_phone", "call_records", ["phone"])
    op.create_index("ix_call_records_retry_group_id", "call_records", ["retry_group_id"])

    op.create_table(
        "campaign_recipients",
        sa.Column("campaign_id", sa.String(), nullable=False),
        sa.Column("phone", sa.String(), nullable=False),
        sa.Column("workflow_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("timezone", sa.String(), nullable=True),
        sa.Column("zone", sa.String(), nullable=False),
        sa.Column("dialing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("variables", sa.JSON(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "phone"),
    )
    op.create_index(
        "ix_campaign_recipients_state", "campaign_recipients", ["campaign_id", "state", "seq"]
    )

    op.create_table(
        "campaigns",
        sa.Column("campaign_id", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id"),
    )

    op.create_table(
        "suppression",
        sa.Column("phone", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("campaign_id", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("phone"),
    )

    op.create_table(
        "simulated_dials",
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("phone", sa.String(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("placements", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("idempotency_key"),
    )
    op.create_index("ix_simulated_dials_phone", "simulated_dials", ["phone"])

    op.create_table(
        "call_slots",
        sa.Column("campaign_id", sa.String(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "slot"),
    )
    op.create_index("ix_call_slots_holder", "call_slots", ["holder"])

    op.create_table(
        "dial_tickets",
        sa.Column("campaign_id", sa.String(), nullable=False),
        sa.Column("window", sa.BigInteger(), nullable=False),
        sa.Column("ticket", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "window", "ticket"),
    )

    op.create_table(
        "call_line",
        sa.Column("campaign_id", sa.String(), nullable=False),
        sa.Column("holder", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("admitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("held_seconds", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("campaign_id", "holder"),
    )
    op.create_index("ix_call_line_order", "call_line", ["campaign_id", "admitted_at", "seq"])
    op.create_index("ix_call_line_seq", "call_line", ["campaign_id", "seq"])


def downgrade() -> None:
    for table in (
        "call_line",
        "dial_tickets",
        "call_slots",
        "simulated_dials",
        "suppression",
        "campaigns",
        "campaign_recipients",
        "call_records",
    ):
        op.drop_table(table)  # its indexes go with it
