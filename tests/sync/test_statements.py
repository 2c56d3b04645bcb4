"""What one inline change sends to the database (issue 16): the pass reads the outbox row, the
local copy and the billable count in one statement, which on PostgreSQL travels with the
advisory lock (outside SQLAlchemy: one round trip for both); the write's record travels with
the lock's release."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tests.apps import PRO_MONTHLY, AppUnderTest
from tests.conftest import subscribe


def _statements_of_one_change(t: AppUnderTest, org_id: Any) -> list[str]:
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(" ".join(statement.split()))

    sa.event.listen(t.db.engine, "before_cursor_execute", record)
    try:
        t.add_members(org_id, 1)  # inline: the commit runs the sync
    finally:
        sa.event.remove(t.db.engine, "before_cursor_execute", record)
    return sent


def test_an_inline_change_reads_row_copy_and_count_in_one_statement(
    t: AppUnderTest, stripe: Any
) -> None:
    org = t.add_organization()
    t.add_members(org.id, 1)
    sub = subscribe(t, stripe, org.id)

    sent = _statements_of_one_change(t, org.id)
    # The session's isolation level is asked once per database connection (then kept with it
    # in the pool), so a change on a connection the pool has not used yet carries it.
    asked = [s for s in sent if s == "SHOW transaction_isolation"]
    sent = [s for s in sent if s not in asked]

    assert stripe.seats(sub, PRO_MONTHLY) == 2
    assert len(asked) <= 1
    again = _statements_of_one_change(t, org.id)
    assert stripe.seats(sub, PRO_MONTHLY) == 3
    assert "SHOW transaction_isolation" not in again or not asked
    selects = [s for s in sent if s.startswith("SELECT")]
    shown = [s[:60] for s in sent]
    if t.db.engine.dialect.name == "postgresql":
        # sent with the lock, on the driver connection: no SELECT through SQLAlchemy at all
        assert selects == [], shown
        # through SQLAlchemy: the member's INSERT alone (the outbox row travels with the
        # COMMIT, on the driver); the write's mark goes to the driver in autocommit, and the
        # record (copy, ledger and outbox row in one statement) with the release of the lock
        assert len(sent) == 1, shown
        assert sent[0].startswith("INSERT INTO memberships"), shown
    else:
        assert len(selects) == 1, shown
        assert "seat_billing_outbox" in selects[0] and "seat_billing_subscriptions" in selects[0]
