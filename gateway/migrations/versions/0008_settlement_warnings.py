"""settlement statements and warnings: flaws in a bank's file are flagged, not refused

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "settlement_statements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("statement_id", sa.String(length=64), nullable=True),
        sa.Column("account", sa.String(length=34), nullable=True),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("sums", sa.JSON(), nullable=False),
        sa.Column("opening", sa.String(length=48), nullable=True),
        sa.Column("closing", sa.String(length=48), nullable=True),
        sa.Column("first_day", sa.String(length=10), nullable=True),
        sa.Column("last_day", sa.String(length=10), nullable=True),
        sa.Column("warning_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["settlement_files.id"],
            name=op.f("fk_settlement_statements_file_id_settlement_files"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_statements")),
    )
    op.create_index(op.f("ix_settlement_statements_file_id"), "settlement_statements", ["file_id"])
    op.create_index(
        "ix_settlement_statements_account_days",
        "settlement_statements",
        ["account", "first_day", "last_day"],
    )
    op.create_table(
        "settlement_warnings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("statement_row_id", sa.Integer(), nullable=True),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.Column("expected", sa.String(length=255), nullable=True),
        sa.Column("found", sa.String(length=255), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["settlement_files.id"],
            name=op.f("fk_settlement_warnings_file_id_settlement_files"),
        ),
        sa.ForeignKeyConstraint(
            ["statement_row_id"],
            ["settlement_statements.id"],
            name=op.f("fk_settlement_warnings_statement_row_id_settlement_statements"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_warnings")),
    )
    op.create_index(op.f("ix_settlement_warnings_file_id"), "settlement_warnings", ["file_id"])
    op.create_index(
        op.f("ix_settlement_warnings_statement_row_id"), "settlement_warnings", ["statement_row_id"]
    )
    with op.batch_alter_table("settlement_files", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("warning_counts", sa.JSON(), server_default="{}", nullable=False)
        )
    with op.batch_alter_table("recon_runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("flawed_statements", sa.JSON(), server_default="[]", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("recon_runs", schema=None) as batch_op:
        batch_op.drop_column("flawed_statements")
    with op.batch_alter_table("settlement_files", schema=None) as batch_op:
        batch_op.drop_column("warning_counts")
    op.drop_index(op.f("ix_settlement_warnings_statement_row_id"), table_name="settlement_warnings")
    op.drop_index(op.f("ix_settlement_warnings_file_id"), table_name="settlement_warnings")
    op.drop_table("settlement_warnings")
    op.drop_index("ix_settlement_statements_account_days", table_name="settlement_statements")
    op.drop_index(op.f("ix_settlement_statements_file_id"), table_name="settlement_statements")
    op.drop_table("settlement_statements")
