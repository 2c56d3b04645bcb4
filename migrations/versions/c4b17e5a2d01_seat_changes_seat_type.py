"""The seat-change ledger names the seat type a row moved (plans with several seat types).

Revision ID: c4b17e5a2d01
Revises: 7596aa36137b
Create Date: 2026-11-30 02:30:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c4b17e5a2d01"
down_revision = "7596aa36137b"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("seat_billing_seat_changes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seat_type", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("seat_billing_seat_changes", schema=None) as batch_op:
        batch_op.drop_column("seat_type")
