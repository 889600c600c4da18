"""audit chains per scope: a chain key on every audit row and a head per chain, so that two
stores' audited writes never wait for one global head

The rows written before this revision were one chain: they keep their hashes and become the
chain ``legacy`` (its head is the old single head), which takes no new rows. A downgrade is
refused once rows of other chains exist: one chain cannot hold them without rehashing them.

Revision ID: 0022_audit_chains
Revises: 0021_parts
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022_audit_chains"
down_revision: str | None = "0021_parts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS = "0" * 64
LEGACY = "legacy"


def upgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chain", sa.String(length=32), nullable=True))
    op.execute(sa.text("UPDATE audit_log SET chain = :legacy").bindparams(legacy=LEGACY))
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.alter_column("chain", existing_type=sa.String(length=32), nullable=False)
    op.create_table(
        "audit_chain_heads",
        sa.Column("chain", sa.String(length=32), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("chain", name=op.f("pk_audit_chain_heads")),
    )
    # The old head becomes the legacy chain's as it is (a missing or disagreeing head keeps
    # showing in `kassa audit verify`); an empty trail has no legacy chain.
    op.execute(
        sa.text(
            "INSERT INTO audit_chain_heads (chain, last_id, last_hash)"
            " SELECT :legacy, last_id, last_hash FROM audit_chain_head"
            " WHERE id = 1 AND (last_id <> 0 OR EXISTS (SELECT 1 FROM audit_log))"
        ).bindparams(legacy=LEGACY)
    )
    op.drop_table("audit_chain_head")


def downgrade() -> None:
    bind = op.get_bind()
    scoped = bind.execute(
        sa.text(
            "SELECT (SELECT count(*) FROM audit_log WHERE chain <> :legacy)"
            " + (SELECT count(*) FROM audit_chain_heads WHERE chain <> :legacy AND last_id <> 0)"
        ).bindparams(legacy=LEGACY)
    ).scalar_one()
    if scoped:
        raise RuntimeError(
            "the audit trail has rows in per-scope chains: one global chain cannot hold them "
            "without rehashing them, so 0022_audit_chains is not downgraded"
        )
    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    legacy = bind.execute(
        sa.text(
            "SELECT last_id, last_hash FROM audit_chain_heads WHERE chain = :legacy"
        ).bindparams(legacy=LEGACY)
    ).first()
    has_rows = bind.execute(sa.text("SELECT EXISTS (SELECT 1 FROM audit_log)")).scalar()
    if legacy is not None:
        op.bulk_insert(head, [{"id": 1, "last_id": legacy[0], "last_hash": legacy[1]}])
    elif not has_rows:
        op.bulk_insert(head, [{"id": 1, "last_id": 0, "last_hash": GENESIS}])
    op.drop_table("audit_chain_heads")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_column("chain")
