"""expand: add display_name, kept in sync with fullname by a trigger, and backfill it

Revision ID: 0002
Revises: 0001
"""

from alembic import op
from customers_sql import DROP_SYNC, SYNC_FUNCTION, SYNC_TRIGGER

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE customers ADD COLUMN display_name text")
    op.execute(SYNC_FUNCTION)
    op.execute(SYNC_TRIGGER)
    op.execute("UPDATE customers SET display_name = fullname WHERE display_name IS NULL")


def downgrade() -> None:
    for statement in DROP_SYNC:
        op.execute(statement)
    op.execute("ALTER TABLE customers DROP COLUMN display_name")
