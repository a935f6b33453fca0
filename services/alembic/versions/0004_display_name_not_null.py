"""display_name NOT NULL: scans the whole table under an ACCESS EXCLUSIVE lock (lock_timeout guards it)

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE customers ALTER COLUMN display_name SET NOT NULL")


def downgrade() -> None:
    op.execute("ALTER TABLE customers ALTER COLUMN display_name DROP NOT NULL")
