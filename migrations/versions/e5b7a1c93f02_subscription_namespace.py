"""Subscriptions record the namespace their provider metadata named when last observed.

The sync engine writes from the local copy without reading the provider first; ``namespace``
lets it do so only for a subscription of this deployment's namespace (``""``: the metadata named
none). Rows recorded before this column existed hold NULL, so their next sync reads first.

Revision ID: e5b7a1c93f02
Revises: c4b17e5a2d01
Create Date: 2026-11-30 03:10:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "e5b7a1c93f02"
down_revision = "c4b17e5a2d01"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("seat_billing_subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("namespace", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("seat_billing_subscriptions", schema=None) as batch_op:
        batch_op.drop_column("namespace")
