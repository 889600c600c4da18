"""merchant revision: a number that moves with every change of a merchant's row or of its
webhook endpoints, so that a web process may keep what a sale reads of its merchant (QR
profile, currencies, limits, thresholds, whether any endpoint is active) and see, in the till's
key check it makes anyway, when that has changed

Triggers move it, so every writer (ORM, Core, plain SQL, another process) is covered.

Revision ID: 0023_merchant_revision
Revises: 0022_audit_chains
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023_merchant_revision"
down_revision: str | None = "0022_audit_chains"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What a sale reads of an endpoint: only these columns' changes move the revision (a
# delivery's bookkeeping does not touch them).
ENDPOINT_COLUMNS = "status, event_types, merchant_id"

POSTGRESQL = [
    """CREATE OR REPLACE FUNCTION kassa_merchant_revision() RETURNS trigger AS $$
    BEGIN
        NEW.revision := OLD.revision + 1;
        RETURN NEW;
    END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER merchants_revision BEFORE UPDATE ON merchants
    FOR EACH ROW EXECUTE FUNCTION kassa_merchant_revision()""",
    """CREATE OR REPLACE FUNCTION kassa_endpoint_revision() RETURNS trigger AS $$
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            UPDATE merchants SET revision = revision + 1 WHERE id = OLD.merchant_id;
        END IF;
        IF TG_OP <> 'DELETE' THEN
            UPDATE merchants SET revision = revision + 1 WHERE id = NEW.merchant_id;
        END IF;
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    f"""CREATE TRIGGER webhook_endpoints_revision
    AFTER INSERT OR DELETE OR UPDATE OF {ENDPOINT_COLUMNS} ON webhook_endpoints
    FOR EACH ROW EXECUTE FUNCTION kassa_endpoint_revision()""",
]
SQLITE = [
    # Recursive triggers are off in SQLite: the trigger's own UPDATE does not fire it again.
    """CREATE TRIGGER merchants_revision AFTER UPDATE ON merchants
    FOR EACH ROW WHEN NEW.revision = OLD.revision
    BEGIN UPDATE merchants SET revision = OLD.revision + 1 WHERE id = NEW.id; END""",
    """CREATE TRIGGER webhook_endpoints_revision_insert AFTER INSERT ON webhook_endpoints
    BEGIN UPDATE merchants SET revision = revision + 1 WHERE id = NEW.merchant_id; END""",
    """CREATE TRIGGER webhook_endpoints_revision_delete AFTER DELETE ON webhook_endpoints
    BEGIN UPDATE merchants SET revision = revision + 1 WHERE id = OLD.merchant_id; END""",
    f"""CREATE TRIGGER webhook_endpoints_revision_update
    AFTER UPDATE OF {ENDPOINT_COLUMNS} ON webhook_endpoints
    BEGIN UPDATE merchants SET revision = revision + 1
        WHERE id IN (OLD.merchant_id, NEW.merchant_id); END""",  # noqa: S608 (constants)
]


def upgrade() -> None:
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="0"))
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRESQL if postgresql else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER webhook_endpoints_revision ON webhook_endpoints")
        op.execute("DROP TRIGGER merchants_revision ON merchants")
        op.execute("DROP FUNCTION kassa_endpoint_revision()")
        op.execute("DROP FUNCTION kassa_merchant_revision()")
    else:
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER webhook_endpoints_revision_{name}")
        op.execute("DROP TRIGGER merchants_revision")
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.drop_column("revision")
