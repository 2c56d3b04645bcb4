"""The outbox row commits with the member change, or neither does, however the commit goes.

On PostgreSQL with psycopg the row is sent with the COMMIT itself (flask_seat_billing.capture.
marks_at_commit); elsewhere it is written at flush. These tests hold on both paths, so they run on
the suite's database, SQLite or PostgreSQL.
"""

from __future__ import annotations

import gc
import signal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from tests.apps import PRO_MONTHLY
from tests.conftest import AppFactory, subscribe
from tests.helpers import outbox_rows

ONE_CONNECTION = {"SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 1, "max_overflow": 0}}


def _keys(t: Any) -> set[str]:
    return {row["organization_key"] for row in outbox_rows(t)}


def _kill_backend(url: str, t: Any) -> None:
    """Terminate the server process behind the session's connection, as a failover would."""
    pid = t.db.session.execute(sa.text("SELECT pg_backend_pid()")).scalar()
    killer = sa.create_engine(url)
    with killer.begin() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    killer.dispose()


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
        assert stripe.seats(sub, PRO_MONTHLY) == 3


@pytest.mark.parametrize("lost_at", ["commit", "next statement"])
def test_a_lost_connection_is_reported_rolled_back_and_replaced(
    make_app: AppFactory, postgres_url: str, lost_at: str
) -> None:
    t = make_app({**ONE_CONNECTION, "SEAT_BILLING_SYNC_MODE": "manual"}, database_url=postgres_url)
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 1, commit=False)
        t.db.session.flush()
        _kill_backend(postgres_url, t)

        with pytest.raises(sa.exc.OperationalError) as lost:
            if lost_at == "commit":
                t.db.session.commit()
            else:
                t.db.session.execute(sa.text("SELECT 1"))
        assert lost.value.connection_invalidated
        t.db.session.rollback()  # must not raise: the app recovers as without the extension

        t.add_members(org.id, 1)
        assert _keys(t) == {str(org.id)}
        assert t.Membership.query.filter_by(organization_id=org.id).count() == 1


def test_a_failed_outbox_write_leaves_the_pooled_connection_usable(make_app: AppFactory) -> None:
    t = make_app({**ONE_CONNECTION, "SEAT_BILLING_SYNC_MODE": "manual"})
    with t.app.app_context():
        org_id = t.add_organization().id
        t.db.session.remove()  # give the pool's one connection back
        with t.db.engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE seat_billing_outbox RENAME TO outbox_away"))
        try:
            t.add_members(org_id, 1, commit=False)
            with pytest.raises(sa.exc.DBAPIError):
                t.db.session.commit()
            t.db.session.remove()  # what Flask's teardown does: no explicit rollback
        finally:
            with t.db.engine.begin() as conn:
                conn.execute(sa.text("ALTER TABLE outbox_away RENAME TO seat_billing_outbox"))

        t.add_members(org_id, 1)

        assert _keys(t) == {str(org_id)}
        assert t.Membership.query.filter_by(organization_id=org_id).count() == 1


def test_an_apps_commit_listener_can_still_veto_the_change(make_app: AppFactory) -> None:
    t = make_app({"SEAT_BILLING_SYNC_MODE": "manual"})
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 1)

        def veto(conn: sa.Connection) -> None:
            raise RuntimeError("audit store unavailable")

        event.listen(t.db.engine, "commit", veto)
        try:
            t.add_members(org.id, 1, commit=False)
            with pytest.raises(RuntimeError, match="audit store"):
                t.db.session.commit()
            t.db.session.rollback()
        finally:
            event.remove(t.db.engine, "commit", veto)

        assert t.Membership.query.filter_by(organization_id=org.id).count() == 1


@pytest.mark.parametrize("reset_on_return", ["rollback", "commit"])
def test_a_session_dropped_without_close_keeps_row_and_member_together(
    make_app: AppFactory, reset_on_return: str
) -> None:
    # The pool ends the transaction itself: rolled back (the default) or committed.
    options = {"pool_size": 1, "max_overflow": 0, "pool_reset_on_return": reset_on_return}
    t = make_app({"SQLALCHEMY_ENGINE_OPTIONS": options, "SEAT_BILLING_SYNC_MODE": "manual"})
    with t.app.app_context():
        a, b = t.add_organization("A"), t.add_organization("B")
        a_id, b_id = a.id, b.id
        t.db.session.remove()

        def forgotten_session() -> None:
            session = Session(t.db.engine)
            session.add(t.Membership(organization_id=a_id, email="x@x.io"))
            session.flush()

        forgotten_session()
        gc.collect()
        t.add_members(b_id, 1)

        assert _keys(t) == ({str(a_id)} if reset_on_return == "commit" else set()) | {str(b_id)}
        kept = t.Membership.query.filter_by(organization_id=a_id).count()
        assert kept == (1 if reset_on_return == "commit" else 0)


def test_schema_translate_map_is_honoured(make_app: AppFactory, postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS fsb_tenant CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA fsb_tenant"))
    try:
        options = {"execution_options": {"schema_translate_map": {None: "fsb_tenant"}}}
        t = make_app({"SQLALCHEMY_ENGINE_OPTIONS": options, "SEAT_BILLING_SYNC_MODE": "manual"},
                     database_url=postgres_url)
        with t.app.app_context():
            org = t.add_organization()
            t.add_members(org.id, 1)
            with engine.connect() as conn:
                rows = conn.execute(sa.text(
                    "SELECT organization_key FROM fsb_tenant.seat_billing_outbox")).scalars()
                assert set(rows) == {str(org.id)}

            # The sync reads and settles the row in the translated schema too (its lock and
            # first read are then sent through SQLAlchemy, which renders the map).
            result = t.billing.sync_organization(org.id)
            with engine.connect() as conn:
                left = conn.execute(sa.text(
                    "SELECT count(*) FROM fsb_tenant.seat_billing_outbox")).scalar()
        assert result.action == "no_subscription" and result.billable == 1
        assert left == 0
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA fsb_tenant CASCADE"))
        engine.dispose()


class _RequestTimeout(BaseException):
    """What SIGALRM-based request timeouts raise."""


def test_a_commit_interrupted_by_a_timeout_leaves_no_broken_connection(
    make_app: AppFactory, postgres_url: str
) -> None:
    t = make_app({**ONE_CONNECTION, "SEAT_BILLING_SYNC_MODE": "manual"}, database_url=postgres_url)
    previous = signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(_RequestTimeout()))
    blocker = sa.create_engine(postgres_url).connect()
    try:
        with t.app.app_context():
            org_id = t.add_organization().id
            t.add_members(org_id, 1)
            t.db.session.remove()
            blocker.execute(sa.text("SELECT 1 FROM seat_billing_outbox FOR UPDATE"))
            t.add_members(org_id, 1, commit=False)
            signal.setitimer(signal.ITIMER_REAL, 0.5)
            with pytest.raises(_RequestTimeout):
                t.db.session.commit()  # waits on the outbox row the blocker holds
            signal.setitimer(signal.ITIMER_REAL, 0)
            t.db.session.remove()
            blocker.rollback()

            t.add_members(org_id, 1)  # the pool hands out a working connection
            assert t.Membership.query.filter_by(organization_id=org_id).count() >= 2
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        blocker.close()
        blocker.engine.dispose()


def test_a_failed_session_dropped_without_close_resets_quietly(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    t = make_app({**ONE_CONNECTION, "SEAT_BILLING_SYNC_MODE": "manual"})
    with t.app.app_context():
        a, b = t.add_organization("A"), t.add_organization("B")
        a_id, b_id = a.id, b.id
        t.db.session.remove()

        def forgotten_failed_session() -> None:
            session = Session(t.db.engine)
            session.add(t.Membership(organization_id=a_id, email="x@x.io"))
            session.flush()
            with pytest.raises(sa.exc.DBAPIError):
                session.execute(sa.text("SELECT * FROM no_such_table"))

        with caplog.at_level("ERROR", logger="sqlalchemy.pool"):
            forgotten_failed_session()
            gc.collect()
        assert not [r for r in caplog.records if r.name.startswith("sqlalchemy.pool")]

        t.add_members(b_id, 1)
        assert _keys(t) == {str(b_id)}
        assert t.Membership.query.filter_by(organization_id=a_id).count() == 0


@pytest.mark.parametrize("at_commit", [True, False])
def test_outbox_at_commit_decides_when_the_row_is_written(
    make_app: AppFactory, postgres_url: str, at_commit: bool
) -> None:
    """On (the default), psycopg sends the row with the COMMIT, so the transaction itself does
    not see it before; off, it is written at flush, visible to the app's own transaction."""
    t = make_app({"SEAT_BILLING_SYNC_MODE": "manual", "SEAT_BILLING_OUTBOX_AT_COMMIT": at_commit},
                 database_url=postgres_url)
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 1, commit=False)
        t.db.session.flush()
        before_commit = t.db.session.execute(
            sa.text("SELECT organization_key FROM seat_billing_outbox")).scalars().all()
        assert before_commit == ([] if at_commit else [str(org.id)])
        t.db.session.commit()
        assert _keys(t) == {str(org.id)}


def test_keys_with_quotes_and_backslashes_are_marked_exactly_commit_after_commit(
    make_app: AppFactory,
) -> None:
    # On PostgreSQL the key's literal is quoted once and remembered: every later commit of the
    # organization must still name it exactly (and another key must not be confused with it).
    t = make_app({"SEAT_BILLING_SYNC_MODE": "manual"}, key_type="str")
    names = ["o'brien", "back\\slash", "both\\'"]
    with t.app.app_context():
        for name in names:
            t.db.session.add(t.Organization(id=name, name=name))
        t.db.session.commit()
        for _ in range(2):
            for name in names:
                t.add_members(name, 1)
            assert _keys(t) == set(names)
            assert {row["generation"] for row in outbox_rows(t)} == {_ + 1}
