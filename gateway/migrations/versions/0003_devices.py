"""devices

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.adapters.models import UtcDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_taps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("till_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("applications", sa.JSON(), nullable=False),
        sa.Column("seen_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["till_id"], ["tills.id"], name=op.f("fk_customer_taps_till_id_tills")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_taps")),
    )
    with op.batch_alter_table("customer_taps", schema=None) as batch_op:
        batch_op.create_index("ix_customer_taps_till_seen", ["till_id", "seen_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_customer_taps_token"), ["token"], unique=False)

    op.create_table(
        "device_status",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("till_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("url", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("host", sa.String(length=128), nullable=False),
        sa.Column("last_seen_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["till_id"], ["tills.id"], name=op.f("fk_device_status_till_id_tills")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_status")),
        sa.UniqueConstraint("till_id", "kind", name="uq_device_status_till_kind"),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("queue", sa.String(length=64), server_default="default", nullable=False)
        )
        batch_op.drop_index(batch_op.f("ix_jobs_due"))
        batch_op.create_index("ix_jobs_due", ["queue", "status", "run_at"], unique=False)

    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("card", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("display_text", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("receipt_text", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_column("receipt_text")
        batch_op.drop_column("display_text")
        batch_op.drop_column("card")

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_due")
        batch_op.create_index(batch_op.f("ix_jobs_due"), ["status", "run_at"], unique=False)
        batch_op.drop_column("queue")

    op.drop_table("device_status")
    with op.batch_alter_table("customer_taps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_taps_token"))
        batch_op.drop_index("ix_customer_taps_till_seen")

    op.drop_table("customer_taps")
