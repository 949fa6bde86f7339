"""Suppression provenance: who or what put each number on the list (`source`: "cli:<user>",
"import:<file>", "opt_out:campaign <id>", "call:dnd campaign <id>") and an operator's `note`, so
a compliance question ("why is this number not called, since when, on whose word?") has an
answer. Rows from before stay null: their source was never recorded, and a guess would be
evidence made up.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 05:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("suppression", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("note", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("suppression", schema=None) as batch_op:
        batch_op.drop_column("note")
        batch_op.drop_column("source")
