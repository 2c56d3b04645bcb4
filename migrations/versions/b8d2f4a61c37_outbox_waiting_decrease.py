"""The outbox keeps a waiting seat decrease apart from the row's status and due time.

``decrease_due_at`` (when the decrease was first due, the period's end less the margin) and
``decrease_seats`` (what it lowers to) are written when a decrease is scheduled and survive the
marks, failures and holds that rewrite ``status`` and ``next_attempt_at``: a decrease whose due
time passed before the renewal is still credited when a member change or a failed write came
in between. Rows already ``scheduled`` get theirs from the columns that held them so far.
``changed_at`` is the time of the newest membership change a row holds (every mark writes it),
so a sync after a renewal can tell whether anything changed since it.

Revision ID: b8d2f4a61c37
Revises: e5b7a1c93f02
Create Date: 2026-11-30 05:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "b8d2f4a61c37"
down_revision = "e5b7a1c93f02"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("seat_billing_outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("decrease_due_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("decrease_seats", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("changed_at", sa.DateTime(), nullable=True))
    op.execute(
        "UPDATE seat_billing_outbox SET decrease_due_at = next_attempt_at, "
        "decrease_seats = target_seats WHERE status = 'scheduled'"
    )


def downgrade() -> None:
    with op.batch_alter_table("seat_billing_outbox", schema=None) as batch_op:
        batch_op.drop_column("changed_at")
        batch_op.drop_column("decrease_seats")
        batch_op.drop_column("decrease_due_at")
