"""Subscriptions record each seat type's quantity and item (plans with ``seat_prices``).

The sync engine writes a change of a subscription with seat types from the local copy, in one
request, as it does a single seat quantity; ``seat_types`` holds what it needs for that
(``{"seats": {type: n}, "items": {type: item id}}``). Rows recorded before this column existed
hold NULL, so their next sync reads first and fills it.

Revision ID: b8e2d4f61a37
Revises: b8d2f4a61c37
Create Date: 2026-11-30 04:45:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "b8e2d4f61a37"
down_revision = "b8d2f4a61c37"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("seat_billing_subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seat_types", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("seat_billing_subscriptions", schema=None) as batch_op:
        batch_op.drop_column("seat_types")
