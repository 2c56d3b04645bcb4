"""The outbox row commits with the member change, or neither does, however the commit goes.

On PostgreSQL with psycopg the row is sent with the COMMIT itself (flask_seat_billing.
marks_at_commit); elsewhere it is written at flush. These tests hold on both paths, so they run on
the suite's database, SQLite or PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from tests.apps import SEAT_PRICE
from tests.conftest import AppFactory, subscribe
from tests.helpers import outbox_rows

ONE_CONNECTION = {"SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 1, "max_overflow": 0}}


def _keys(t: Any) -> set[str]:
    return {row["organization_key"] for row in outbox_rows(t)}


def test_a_rolled_back_change_leaves_nothing_for_the_next_commit(make_app: AppFactory) -> None:
    # One pooled connection: the next transaction runs on the very connection that rolled back.
    t = make_app({**ONE_CONNECTION, "SEAT_BILLING_SYNC_MODE": "manual"})
    with t.app.app_context():
        a, b = t.add_organization("A"), t.add_organization("B")
        t.add_members(a.id, 1, commit=False)
        t.db.session.flush()
        t.db.session.rollback()

        t.add_members(b.id, 1)

        assert _keys(t) == {str(b.id)}


def test_a_failed_outbox_write_fails_the_commit_and_keeps_nothing(make_app: AppFactory) -> None:
    t = make_app({"SEAT_BILLING_SYNC_MODE": "manual"})
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 1)
        with t.db.engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE seat_billing_outbox RENAME TO outbox_away"))
        try:
            t.add_members(org.id, 1, commit=False)
            with pytest.raises(sa.exc.DBAPIError, match="seat_billing_outbox"):
                t.db.session.commit()
            t.db.session.rollback()
        finally:
            with t.db.engine.begin() as conn:
                conn.execute(sa.text("ALTER TABLE outbox_away RENAME TO seat_billing_outbox"))

        assert t.Membership.query.filter_by(organization_id=org.id).count() == 1


def test_a_savepoint_rolled_back_after_a_change_keeps_that_change(make_app: AppFactory) -> None:
    t = make_app({"SEAT_BILLING_SYNC_MODE": "manual"})
    with t.app.app_context():
        a, b = t.add_organization("A"), t.add_organization("B")
        t.add_members(a.id, 1, commit=False)
        t.db.session.flush()
        savepoint = t.db.session.begin_nested()
        t.add_members(b.id, 1, commit=False)
        t.db.session.flush()
        savepoint.rollback()
        t.db.session.commit()

        assert _keys(t) == {str(a.id)}
        assert t.Membership.query.filter_by(organization_id=b.id).count() == 0


@pytest.mark.parametrize("org_id", ["o'brien\\team", "équipe-ü ; COMMIT; --", "%(key)s"])
def test_any_organization_key_is_stored_exactly(
    make_app: AppFactory, stripe: Any, org_id: str
) -> None:
    t = make_app({"SEAT_BILLING_SYNC_MODE": "manual"}, key_type="str")
    with t.app.app_context():
        org = t.Organization(id=org_id, name="Odd")
        other = t.Organization(id="plain", name="Plain")
        t.db.session.add_all([org, other])
        t.db.session.commit()
        t.add_members(org_id, 1)
        sub = subscribe(t, stripe, org_id)
        t.db.session.execute(sa.delete(t.db.metadata.tables["seat_billing_outbox"]))
        t.db.session.commit()

        t.add_members(org_id, 2, commit=False)
        t.add_members("plain", 1, commit=False)
        t.db.session.commit()

        assert _keys(t) == {org_id, "plain"}
        t.billing.sync_pending()
        assert stripe.item_quantity(sub, SEAT_PRICE) == 3


def test_a_connection_lost_at_commit_is_reported_and_replaced(
    make_app: AppFactory, postgres_url: str
) -> None:
    t = make_app({**ONE_CONNECTION, "SEAT_BILLING_SYNC_MODE": "manual"}, database_url=postgres_url)
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 1, commit=False)
        t.db.session.flush()
        pid = t.db.session.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        killer = sa.create_engine(postgres_url)
        with killer.begin() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        killer.dispose()

        with pytest.raises(sa.exc.OperationalError) as lost:
            t.db.session.commit()
        assert lost.value.connection_invalidated
        t.db.session.rollback()

        t.add_members(org.id, 1)
        assert _keys(t) == {str(org.id)}
        assert t.Membership.query.filter_by(organization_id=org.id).count() == 1
