"""card numbers masked in everything already stored; settlement files staged while importing

Every text, JSON and binary column of every table is read in batches and any card number in it
masked (gateway.adapters.card_scan, the rule of gateway.domain.card_data): raw settlement files
and callbacks (inbound_events.body), errors, remittance texts, receipts. settlement_entries'
masked_pan becomes first six/last four at most. The content hashes stay those of the originals.
Archived copies of large files (the paths their inbound events name) are rewritten masked.
A new ``settlement_files.state`` lets an import write its entries in short transactions.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    from gateway.adapters.card_scan import scrub_archived_copies, scrub_database

    with op.batch_alter_table("settlement_files", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("state", sa.String(length=16), nullable=False, server_default="imported")
        )
    scrub_database(op.get_bind())
    scrub_archived_copies(op.get_bind())  # the copies of files over [settlement] store_max_bytes


def downgrade() -> None:
    # What was masked stays masked: the card numbers are gone for good.
    with op.batch_alter_table("settlement_files", schema=None) as batch_op:
        batch_op.drop_column("state")
