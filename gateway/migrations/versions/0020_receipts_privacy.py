"""e-receipts and privacy: receipt links (token hashes only), store VAT rates, customers'
marketing consent and forgetting

Revision ID: 0020_receipts_privacy
Revises: 0016
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.adapters.models import UtcDateTime

revision: str = "0020_receipts_privacy"
# The brief names this "0016_card_numbers_masked"; the chain's own id for it is "0016".
down_revision: str | None = "0019_staff_language"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "receipt_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("payment_id", sa.String(length=36), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_receipt_links_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_receipt_links_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_receipt_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_receipt_links_token_hash")),
    )
    with op.batch_alter_table("receipt_links", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_receipt_links_payment_id"), ["payment_id"], unique=False
        )
    with op.batch_alter_table("stores", schema=None) as batch_op:
        batch_op.add_column(sa.Column("vat_rates", sa.JSON(), nullable=True))
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("marketing_consent", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("consent_at", UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column("consent_source", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("forgotten_at", UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("forgotten_at")
        batch_op.drop_column("consent_source")
        batch_op.drop_column("consent_at")
        batch_op.drop_column("marketing_consent")
    with op.batch_alter_table("stores", schema=None) as batch_op:
        batch_op.drop_column("vat_rates")
    with op.batch_alter_table("receipt_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_receipt_links_payment_id"))
    op.drop_table("receipt_links")
