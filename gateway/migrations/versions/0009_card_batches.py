"""card batches: each terminal end of day, the terminal's totals beside Kassa's

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.adapters.models import UtcDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "card_batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("till_id", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("terminal_total_minor", sa.BigInteger(), nullable=True),
        sa.Column("terminal_count", sa.Integer(), nullable=True),
        sa.Column("terminal_by_card_type", sa.JSON(), nullable=False),
        sa.Column("kassa_total_minor", sa.BigInteger(), nullable=False),
        sa.Column("kassa_count", sa.Integer(), nullable=False),
        sa.Column("payment_ids", sa.JSON(), nullable=False),
        sa.Column("difference", sa.Text(), nullable=True),
        sa.Column("receipt_text", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("closed_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["till_id"], ["tills.id"], name=op.f("fk_card_batches_till_id_tills")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_card_batches")),
    )
    with op.batch_alter_table("card_batches", schema=None) as batch_op:
        batch_op.create_index("ix_card_batches_till_closed", ["till_id", "closed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("card_batches", schema=None) as batch_op:
        batch_op.drop_index("ix_card_batches_till_closed")
    op.drop_table("card_batches")
