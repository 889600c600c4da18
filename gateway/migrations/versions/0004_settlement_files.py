"""settlement files

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.adapters.models import UtcDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "settlement_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("inbound_event_id", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("mapping", sa.String(length=64), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("entry_count", sa.Integer(), nullable=False),
        sa.Column("skipped_count", sa.Integer(), nullable=False),
        sa.Column("sums", sa.JSON(), nullable=False),
        sa.Column("pans_masked", sa.Integer(), nullable=False),
        sa.Column("imported_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["inbound_event_id"],
            ["inbound_events.id"],
            name=op.f("fk_settlement_files_inbound_event_id_inbound_events"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_files")),
        sa.UniqueConstraint("content_hash", name=op.f("uq_settlement_files_content_hash")),
        sa.UniqueConstraint("inbound_event_id", name=op.f("uq_settlement_files_inbound_event_id")),
    )
    op.create_table(
        "settlement_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("identity", sa.String(length=64), nullable=True),
        sa.Column("location", sa.String(length=255), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("indicator", sa.String(length=4), nullable=False),
        sa.Column("reversal", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("booked_on", sa.String(length=10), nullable=True),
        sa.Column("value_on", sa.String(length=10), nullable=True),
        sa.Column("statement_id", sa.String(length=64), nullable=True),
        sa.Column("account_iban", sa.String(length=34), nullable=True),
        sa.Column("entry_index", sa.Integer(), nullable=True),
        sa.Column("entry_ref", sa.String(length=64), nullable=True),
        sa.Column("entry_amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("entry_indicator", sa.String(length=4), nullable=True),
        sa.Column("entry_tx_count", sa.Integer(), nullable=True),
        sa.Column("end_to_end_id", sa.String(length=64), nullable=True),
        sa.Column("account_servicer_ref", sa.String(length=64), nullable=True),
        sa.Column("transaction_id", sa.String(length=64), nullable=True),
        sa.Column("instruction_id", sa.String(length=64), nullable=True),
        sa.Column("remittance", sa.Text(), nullable=True),
        sa.Column("creditor_reference", sa.String(length=64), nullable=True),
        sa.Column("gross_minor", sa.BigInteger(), nullable=True),
        sa.Column("charges_minor", sa.BigInteger(), nullable=True),
        sa.Column("charges_included", sa.Boolean(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=True),
        sa.Column("merchant_id", sa.String(length=64), nullable=True),
        sa.Column("terminal_id", sa.String(length=32), nullable=True),
        sa.Column("masked_pan", sa.String(length=19), nullable=True),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["settlement_files.id"],
            name=op.f("fk_settlement_entries_file_id_settlement_files"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_entries")),
        sa.UniqueConstraint("source", "identity", name="uq_settlement_entries_source_identity"),
    )
    with op.batch_alter_table("settlement_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_settlement_entries_booked_on"), ["booked_on"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_settlement_entries_end_to_end_id"), ["end_to_end_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_settlement_entries_entry_ref"), ["entry_ref"], unique=False
        )
        batch_op.create_index(
            "ix_settlement_entries_file_position", ["file_id", "position"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("settlement_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_settlement_entries_file_position")
        batch_op.drop_index(batch_op.f("ix_settlement_entries_entry_ref"))
        batch_op.drop_index(batch_op.f("ix_settlement_entries_end_to_end_id"))
        batch_op.drop_index(batch_op.f("ix_settlement_entries_booked_on"))

    op.drop_table("settlement_entries")
    op.drop_table("settlement_files")
