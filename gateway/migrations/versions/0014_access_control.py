"""approvals at the till: supervisors' PINs, merchants' approval limits, the approvals record

Revision ID: 0014
Revises: 0010
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.adapters.models import UtcDateTime

revision: str = "0014"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("approval_pin_hash", sa.String(length=255), nullable=True))
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("approval_limits", sa.JSON(), nullable=True))
    op.create_table(
        "approvals",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("till_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("payment_id", sa.String(length=36), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("approver_id", sa.Integer(), nullable=False),
        sa.Column("approver", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=100), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.Column("used_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["approver_id"], ["staff_users.id"], name=op.f("fk_approvals_approver_id_staff_users")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_approvals_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["store_id"], ["stores.id"], name=op.f("fk_approvals_store_id_stores")
        ),
        sa.ForeignKeyConstraint(["till_id"], ["tills.id"], name=op.f("fk_approvals_till_id_tills")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approvals")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_approvals_token_hash")),
    )
    op.create_index("ix_approvals_payment", "approvals", ["payment_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_approvals_payment", table_name="approvals")
    op.drop_table("approvals")
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.drop_column("approval_limits")
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.drop_column("approval_pin_hash")
