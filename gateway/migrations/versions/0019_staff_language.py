"""staff members' language for the cashier screen and the portal

``staff_users.language``: one of the languages Kassa speaks (``en``, ``zh_CN``, ``de``), or
empty to follow the browser's Accept-Language.

Revision ID: 0019_staff_language
Revises: 0016
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_staff_language"
# The 0016_card_numbers_masked migration's revision id is "0016".
down_revision: str | None = "0018_alerts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.drop_column("language")
