"""The sync's fused queries run statements prepared on the session; a session that lost them
(``DISCARD ALL`` from a pooler, ``DEALLOCATE``) still syncs every change, holding the lock once."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from flask_seat_billing import signals
from tests.apps import PRO_MONTHLY
from tests.conftest import AppFactory, subscribe
from tests.helpers import ledger_rows, outbox_rows

# The statement each case takes away from the session, by a fragment of its text.
FIRST_READ = "fsb_row.organization_key"
RECORD = "seat_billing_copy"


def _deallocate(dbapi_connection: Any, fragment: str | None) -> None:
    """Drop the session's prepared statements (those whose text holds ``fragment``)."""
    raw_autocommit = dbapi_connection.autocommit
    with dbapi_connection.cursor() as cursor:
        if fragment is None:
            cursor.execute("DEALLOCATE ALL")
        else:
            cursor.execute("SELECT name FROM pg_prepared_statements WHERE statement LIKE %s",
                           (f"%{fragment}%",))
            for (name,) in cursor.fetchall():
                cursor.execute(f"DEALLOCATE {name}")
    if not raw_autocommit:
        dbapi_connection.commit()


@pytest.mark.parametrize("lost", ["first read", "record"])
def test_a_session_that_lost_its_prepared_statements_still_syncs(
    make_app: AppFactory, stripe: Any, postgres_url: str, lost: str
) -> None:
    # Two connections, taken in turn (the pool is FIFO): the request's and the sync's.
    t = make_app({"SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 2, "max_overflow": 0}},
                 database_url=postgres_url)
    with t.app.app_context():
        t.billing.stop_worker()
        engine = t.db.engine
        if lost == "first read":
            # Every checkout: the pass's first read (sent with the lock) finds its statement gone.
            def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
                _deallocate(dbapi_connection, None)
            sa.event.listen(engine, "checkout", checkout)
        else:
            # Just before the write's mark: the record (sent with the release) finds it gone.
            def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
                if statement.startswith("UPDATE seat_billing_subscriptions SET write_seq"):
                    _deallocate(conn.connection.dbapi_connection, RECORD)
            sa.event.listen(engine, "before_cursor_execute", before)

        org = t.add_organization()
        t.add_members(org.id, 1)
        sub = subscribe(t, stripe, org.id)
        failures: list[Any] = []

        def failed(sender: Any, **kw: Any) -> None:
            failures.append(kw)

        signals.seat_sync_failed.connect(failed)
        try:
            for _ in range(8):  # the first passes prepare; the later ones meet the loss
                t.add_members(org.id, 1)
        finally:
            signals.seat_sync_failed.disconnect(failed)
        assert failures == []  # every pass recovered within itself, none had to be retried
        assert stripe.seats(sub, PRO_MONTHLY) == 9
        assert t.billing.subscription_for(org.id).seats == 9
        assert outbox_rows(t) == []
        assert [(r["from_seats"], r["to_seats"]) for r in ledger_rows(t)][-8:] == [
            (n, n + 1) for n in range(1, 9)]
        # The lock was taken once per pass and released: a newcomer gets it.
        from flask_seat_billing.locks import advisory_key

        key = advisory_key(str(org.id))
        with sa.create_engine(postgres_url).connect() as other:
            assert other.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar_one()
            other.execute(sa.select(sa.func.pg_advisory_unlock(key)))
            other.rollback()


def test_the_sync_prepares_its_first_read_and_record_once_per_session(
    make_app: AppFactory, stripe: Any, postgres_url: str
) -> None:
    t = make_app({"SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 2, "max_overflow": 0}},
                 database_url=postgres_url)
    with t.app.app_context():
        t.billing.stop_worker()
        org = t.add_organization()
        t.add_members(org.id, 1)
        sub = subscribe(t, stripe, org.id)
        for _ in range(3):
            t.add_members(org.id, 1)
        assert stripe.seats(sub, PRO_MONTHLY) == 4
        t.db.session.remove()
        statements: list[str] = []
        with t.db.engine.connect() as one, t.db.engine.connect() as two:  # the whole pool
            for conn in (one, two):
                statements += [row.statement for row in conn.execute(sa.text(
                    "SELECT statement FROM pg_prepared_statements WHERE name LIKE 'fsb\\_%'"))]
        assert any(RECORD in s for s in statements)
        assert any(FIRST_READ in s for s in statements)
