"""Subscriptions record the sync engine's seat writes: how many were sent, and one in doubt.

``write_seq`` makes each seat write's idempotency key new; ``write_key`` names a write sent
whose outcome is not recorded yet (a timeout, a dropped connection, a crash), so that the next
sync reads the provider before writing again.

Revision ID: c41d7a2e9b10
Revises: 9f60ce836583
Create Date: 2026-11-30 02:05:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c41d7a2e9b10"
down_revision = "9f60ce836583"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("seat_billing_subscriptions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("write_seq", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("write_key", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("seat_billing_subscriptions", schema=None) as batch_op:
        batch_op.drop_column("write_key")
        batch_op.drop_column("write_seq")
