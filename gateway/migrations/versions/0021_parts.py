"""reconciliation in partitions: the run row of a partitioned day and its scratch rows

Revision ID: 0021_parts
Revises: 0020_receipts_privacy
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.adapters.models import UtcDateTime

revision: str = "0021_parts"
down_revision: str | None = "0020_receipts_privacy"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recon_fanouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("as_of", sa.String(length=10), nullable=False),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("parts_done", sa.JSON(), nullable=False),
        sa.Column("slots_done", sa.JSON(), nullable=False),
        sa.Column("polars_version", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_recon_fanouts_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["recon_runs.id"], name=op.f("fk_recon_fanouts_run_id_recon_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_fanouts")),
    )
    op.create_index("ix_recon_fanouts_merchant_day", "recon_fanouts", ["merchant_id", "day"])
    op.create_table(
        "recon_fanout_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fanout_id", sa.Integer(), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("payment_id", sa.String(length=64), nullable=False),
        sa.Column("line_id", sa.String(length=64), nullable=True),
        sa.Column("method", sa.String(length=16), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("paid_on", sa.Date(), nullable=True),
        sa.Column("refunded_minor", sa.BigInteger(), nullable=True),
        sa.Column("booking_date", sa.Date(), nullable=True),
        sa.Column("entry_tx_count", sa.BigInteger(), nullable=True),
        sa.Column("entry_amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("fee_minor", sa.BigInteger(), nullable=True),
        sa.Column("settled", sa.BigInteger(), nullable=True),
        sa.Column("line_currency", sa.String(length=3), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["fanout_id"],
            ["recon_fanouts.id"],
            name=op.f("fk_recon_fanout_keys_fanout_id_recon_fanouts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_fanout_keys")),
    )
    op.create_index("ix_recon_fanout_keys_part", "recon_fanout_keys", ["fanout_id", "part"])
    op.create_index("ix_recon_fanout_keys_slot", "recon_fanout_keys", ["fanout_id", "slot"])
    op.create_table(
        "recon_fanout_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fanout_id", sa.Integer(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("subject", sa.String(length=8), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("expected_minor", sa.BigInteger(), nullable=True),
        sa.Column("settled_minor", sa.BigInteger(), nullable=True),
        sa.Column("fee_expected_minor", sa.BigInteger(), nullable=True),
        sa.Column("fee_charged_minor", sa.BigInteger(), nullable=True),
        sa.Column("linked", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["fanout_id"],
            ["recon_fanouts.id"],
            name=op.f("fk_recon_fanout_results_fanout_id_recon_fanouts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_fanout_results")),
    )
    op.create_index("ix_recon_fanout_results_slot", "recon_fanout_results", ["fanout_id", "slot"])


def downgrade() -> None:
    op.drop_index("ix_recon_fanout_results_slot", table_name="recon_fanout_results")
    op.drop_table("recon_fanout_results")
    op.drop_index("ix_recon_fanout_keys_slot", table_name="recon_fanout_keys")
    op.drop_index("ix_recon_fanout_keys_part", table_name="recon_fanout_keys")
    op.drop_table("recon_fanout_keys")
    op.drop_index("ix_recon_fanouts_merchant_day", table_name="recon_fanouts")
    op.drop_table("recon_fanouts")
