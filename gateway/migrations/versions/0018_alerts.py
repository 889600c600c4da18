"""anomaly alerts: the alerts table, merchants' own thresholds, stores' opening hours, and an
index on a till's payments by time for the rules' windows

Revision ID: 0018_alerts
Revises: 0016
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.adapters.models import UtcDateTime

revision: str = "0018_alerts"
# The lead relinks the chain at merge (0016_card_numbers_masked's revision id is "0016").
down_revision: str | None = "0017_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("monitoring_thresholds", sa.JSON(), nullable=True))
    with op.batch_alter_table("stores", schema=None) as batch_op:
        batch_op.add_column(sa.Column("opening_hours", sa.JSON(), nullable=True))
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=True),
        sa.Column("till_id", sa.Integer(), nullable=True),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("subject_kind", sa.String(length=16), nullable=False),
        sa.Column("subject_key", sa.String(length=100), nullable=False),
        sa.Column("window_key", sa.String(length=20), nullable=False),
        sa.Column("window_minutes", sa.Integer(), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("raised_at", UtcDateTime(), nullable=False),
        sa.Column("last_seen_at", UtcDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("open_key", sa.String(length=200), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=100), nullable=True),
        sa.Column("acknowledged_at", UtcDateTime(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_alerts_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["store_id"], ["stores.id"], name=op.f("fk_alerts_store_id_stores")
        ),
        sa.ForeignKeyConstraint(["till_id"], ["tills.id"], name=op.f("fk_alerts_till_id_tills")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("open_key", name=op.f("uq_alerts_open_key")),
    )
    op.create_index("ix_payments_till_created", "payments", ["till_id", "created_at"], unique=False)
    op.create_index(
        "ix_alerts_merchant_status_raised",
        "alerts",
        ["merchant_id", "status", "raised_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_alerts_merchant_status_raised", table_name="alerts")
    op.drop_table("alerts")
    op.drop_index("ix_payments_till_created", table_name="payments")
    with op.batch_alter_table("stores", schema=None) as batch_op:
        batch_op.drop_column("opening_hours")
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.drop_column("monitoring_thresholds")
