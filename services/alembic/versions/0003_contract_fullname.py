"""contract: drop fullname once no running code uses it

Revision ID: 0003
Revises: 0002
"""

from alembic import op
from customers_sql import DROP_SYNC, SYNC_FUNCTION, SYNC_TRIGGER

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in DROP_SYNC:
        op.execute(statement)
    op.execute("ALTER TABLE customers DROP COLUMN fullname")


def downgrade() -> None:
    op.execute("ALTER TABLE customers ADD COLUMN fullname text")
    op.execute("UPDATE customers SET fullname = display_name")
    op.execute(SYNC_FUNCTION)
    op.execute(SYNC_TRIGGER)
