"""Concurrent membership changes on PostgreSQL end with the right quantity."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

from tests.apps import PRO_MONTHLY
from tests.conftest import AppFactory, subscribe
from tests.helpers import outbox_rows


def test_eight_threads_of_random_joins_and_leaves(
    make_app: AppFactory, stripe: Any, postgres_url: str
) -> None:
    t = make_app({"SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 20, "max_overflow": 10}},
                 database_url=postgres_url)
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 1)
        sub = subscribe(t, stripe, org.id)
        org_id = org.id
    errors: list[BaseException] = []

    def churn(seed: int) -> None:
        rng = random.Random(seed)
        mine: list[int] = []
        try:
            with t.app.app_context():
                for i in range(50):
                    if mine and rng.random() < 0.45:
                        member = t.db.session.get(t.Membership, mine.pop(rng.randrange(len(mine))))
                        t.db.session.delete(member)
                    else:
                        member = t.Membership(organization_id=org_id, email=f"t{seed}-{i}@x.io")
                        t.db.session.add(member)
                        t.db.session.flush()
                        mine.append(member.id)
                    t.db.session.commit()
                t.db.session.remove()
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=churn, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert errors == []
    with t.app.app_context():
        t.billing.sync_pending()
        billable = t.billing.billable_seats(org_id)
        assert stripe.seats(sub, PRO_MONTHLY) == billable
        assert t.billing.subscription_for(org_id).seats == billable
        assert outbox_rows(t) == []


@pytest.mark.parametrize("session_level", [None, "REPEATABLE READ"])
def test_the_read_sent_with_the_lock_sees_what_the_holder_committed(
    postgres_url: str, session_level: str | None
) -> None:
    """The first read travels with ``pg_advisory_lock`` in one query: it must still see what
    the previous holder committed before releasing, not a snapshot from before the wait; also
    when the app's ``connect`` listener sets another isolation level for its sessions (then the
    read is not sent with the lock, since one snapshot would cover both)."""
    import time

    import sqlalchemy as sa

    from flask_seat_billing.locks import organization_lock, take_first_read

    engine = sa.create_engine(postgres_url)
    if session_level is not None:
        @sa.event.listens_for(engine, "connect")
        def _session(dbapi_connection: Any, record: Any) -> None:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL "
                               + session_level)
            dbapi_connection.commit()
    table = sa.Table("fsb_lock_probe", sa.MetaData(), sa.Column("n", sa.Integer))
    table.metadata.drop_all(engine)
    table.metadata.create_all(engine)
    first = (sa.select(sa.func.count().label("rows")).select_from(table)
             .where(table.c.n > sa.bindparam("floor")), {"floor": 0})
    seen: list[Any] = []
    holding = threading.Event()

    def waiter() -> None:
        holding.wait(10)
        with organization_lock(engine, "org-probe", first=first) as conn:
            seen.append(take_first_read(conn))
            seen.append(conn.execute(first[0], first[1]).scalar_one())

    thread = threading.Thread(target=waiter)
    thread.start()
    try:
        with organization_lock(engine, "org-probe") as conn:
            holding.set()
            time.sleep(0.3)  # the waiter's lock-and-read is queued behind this lock now
            conn.execute(table.insert(), [{"n": 1}, {"n": 2}])
            conn.commit()
        thread.join(10)
        assert seen == ([{"rows": 2}, 2] if session_level is None else [None, 2])
    finally:
        table.metadata.drop_all(engine)
        engine.dispose()


def test_a_write_sent_with_the_release_is_committed_before_the_next_holder_reads(
    postgres_url: str,
) -> None:
    """The write's record and the lock's release travel in one query: the release must follow
    the commit, and must not happen while work is owed (then the holder keeps the lock)."""
    import time

    import sqlalchemy as sa

    from flask_seat_billing.locks import (
        advisory_key,
        commit_and_release,
        organization_lock,
        take_first_read,
    )

    engine = sa.create_engine(postgres_url)
    table = sa.Table("fsb_release_probe", sa.MetaData(), sa.Column("n", sa.Integer))
    table.metadata.drop_all(engine)
    table.metadata.create_all(engine)
    write = table.insert().values(n=sa.bindparam("n")).returning(table.c.n)
    owed = sa.select(sa.exists().where(table.c.n > sa.bindparam("owed_above")))
    first = (sa.select(sa.func.count().label("rows")).select_from(table), {})
    seen: list[Any] = []
    holding = threading.Event()

    def waiter() -> None:
        holding.wait(10)
        with organization_lock(engine, "org-release", first=first) as conn:
            seen.append(take_first_read(conn))

    def held_elsewhere() -> bool:
        with engine.connect() as other:
            free = other.execute(sa.select(sa.func.pg_try_advisory_lock(
                advisory_key("org-release")))).scalar_one()
            if free:
                other.execute(sa.select(sa.func.pg_advisory_unlock(advisory_key("org-release"))))
            return not free

    thread = threading.Thread(target=waiter)
    try:
        with organization_lock(engine, "org-release") as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            # work owed (a row above 0 exists after the write): the lock stays held
            assert commit_and_release(conn, write, {"n": 1, "owed_above": 0}, owed) == (
                [(1,)], False)
            assert held_elsewhere()
            thread.start()
            holding.set()
            time.sleep(0.3)  # the waiter is queued behind this lock now
            # nothing owed (no row above 5): the release follows the commit
            assert commit_and_release(conn, write, {"n": 2, "owed_above": 5}, owed) == (
                [(2,)], True)
            thread.join(10)
            assert seen == [{"rows": 2}]
        assert not held_elsewhere()  # released once, not twice
    finally:
        if thread.ident is not None:
            thread.join(10)
        table.metadata.drop_all(engine)
        engine.dispose()


def test_a_write_that_fails_with_the_release_keeps_the_lock_and_the_connection(
    postgres_url: str,
) -> None:
    import psycopg
    import sqlalchemy as sa

    from flask_seat_billing.locks import advisory_key, commit_and_release, organization_lock

    engine = sa.create_engine(postgres_url)
    table = sa.Table("fsb_release_fail", sa.MetaData(),
                     sa.Column("n", sa.Integer, nullable=False))
    table.metadata.drop_all(engine)
    table.metadata.create_all(engine)
    write = table.insert().values(n=sa.bindparam("n")).returning(table.c.n)
    owed = sa.select(sa.false())
    key = advisory_key("org-release-fail")
    try:
        with organization_lock(engine, "org-release-fail") as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            with pytest.raises(psycopg.Error):  # sent on the driver: its own error
                commit_and_release(conn, write, {"n": None}, owed)  # NOT NULL refuses it
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 0
            with engine.connect() as other:  # still held: nobody else gets it
                assert other.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar_one() \
                    is False
        with engine.connect() as other:  # released at the end, as usual
            assert other.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar_one()
            other.execute(sa.select(sa.func.pg_advisory_unlock(key)))
    finally:
        table.metadata.drop_all(engine)
        engine.dispose()
