"""create customers

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE TABLE customers (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, fullname text NOT NULL)")


def downgrade() -> None:
    op.execute("DROP TABLE customers")
