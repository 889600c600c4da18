"""staff identity: the audit trail, TOTP second factor, session versions, login throttling,
overlapping till keys

Revision ID: 0015
Revises: 0010
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.adapters.models import UtcDateTime

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The hash the first audit row chains to: 64 zeros.
GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("merchant_id", sa.Integer(), nullable=True),
        sa.Column("store_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=True),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("approved_by", sa.String(length=100), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("row_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("row_hash", name=op.f("uq_audit_log_row_hash")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_action", ["action"], unique=False)
        batch_op.create_index(
            "ix_audit_log_merchant_created", ["merchant_id", "created_at"], unique=False
        )
    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    op.bulk_insert(head, [{"id": 1, "last_id": 0, "last_hash": GENESIS}])
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", UtcDateTime(), nullable=False),
        sa.Column("locked_until", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttle")),
    )
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("session_version", sa.Integer(), server_default="1", nullable=False)
        )
        batch_op.add_column(
            sa.Column("password_change_required", sa.Boolean(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("totp_secret", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("totp_enrolled_at", UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("recovery_codes", sa.JSON(), server_default="[]", nullable=False)
        )
    with op.batch_alter_table("tills", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_key_id", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("previous_key_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("previous_key_expires_at", UtcDateTime(), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_tills_previous_key_id"), ["previous_key_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("tills", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_tills_previous_key_id"), type_="unique")
        batch_op.drop_column("previous_key_expires_at")
        batch_op.drop_column("previous_key_hash")
        batch_op.drop_column("previous_key_id")
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        for column in (
            "recovery_codes",
            "totp_last_step",
            "totp_enrolled_at",
            "totp_secret",
            "password_change_required",
            "session_version",
        ):
            batch_op.drop_column(column)
    op.drop_table("login_throttle")
    op.drop_table("audit_chain_head")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_merchant_created")
        batch_op.drop_index("ix_audit_log_action")
    op.drop_table("audit_log")
