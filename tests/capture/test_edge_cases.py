"""Membership changes made in less common ways are still billed (found in review)."""

from __future__ import annotations

import threading
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, configure_mappers, relationship

from tests.apps import PRO_MONTHLY, AppUnderTest
from tests.conftest import AppFactory, subscribe
from tests.helpers import outbox_rows, seat_writes, wait_for


def _with_members_relationship(t: AppUnderTest) -> None:
    """Give the test app ``Organization.members`` / ``Membership.organization``, as apps do."""
    t.Organization.members = relationship(t.Membership, backref="organization")
    configure_mappers()


def test_member_appended_through_a_relationship(t: AppUnderTest, stripe: Any) -> None:
    _with_members_relationship(t)
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, stripe, org.id)

    t.db.session.get(t.Organization, org.id).members.append(t.Membership(email="x@x.io"))
    t.db.session.commit()

    assert stripe.seats(sub, PRO_MONTHLY) == 3


def test_member_moved_through_a_relationship(t: AppUnderTest, stripe: Any) -> None:
    _with_members_relationship(t)
    a, b = t.add_organization("A"), t.add_organization("B")
    t.add_members(a.id, 2)
    t.add_members(b.id, 2)
    sub_a, sub_b = subscribe(t, stripe, a.id), subscribe(t, stripe, b.id)

    member = t.Membership.query.filter_by(organization_id=a.id).first()
    member.organization = t.db.session.get(t.Organization, b.id)
    t.db.session.commit()

    assert stripe.seats(sub_a, PRO_MONTHLY) == 1
    assert stripe.seats(sub_b, PRO_MONTHLY) == 3


def test_bulk_insert_with_a_list_of_values(t: AppUnderTest, stripe: Any) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, stripe, org.id)

    t.db.session.execute(sa.insert(t.Membership).values([
        {"organization_id": org.id, "email": "a@x.io"},
        {"organization_id": org.id, "email": "b@x.io"},
    ]))
    t.db.session.commit()

    assert stripe.seats(sub, PRO_MONTHLY) == 4


def test_bulk_update_to_a_computed_organization(t: AppUnderTest, stripe: Any) -> None:
    a, b = t.add_organization("A"), t.add_organization("B")
    t.add_members(a.id, 2)
    t.add_members(b.id, 2)
    sub_a, sub_b = subscribe(t, stripe, a.id), subscribe(t, stripe, b.id)
    target = sa.select(t.Organization.id).where(t.Organization.name == "B").scalar_subquery()
    one = t.db.session.execute(
        sa.select(t.Membership.id).where(t.Membership.organization_id == a.id)
    ).scalars().first()

    t.db.session.execute(
        sa.update(t.Membership).where(t.Membership.id == one).values(organization_id=target)
    )
    t.db.session.commit()

    assert stripe.seats(sub_a, PRO_MONTHLY) == 1
    assert stripe.seats(sub_b, PRO_MONTHLY) == 3
    assert outbox_rows(t) == []


def test_session_used_outside_an_app_context(make_app: AppFactory, stripe: Any) -> None:
    t = make_app()
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 2)
        sub = subscribe(t, stripe, org.id)
        engine, org_id = t.db.engine, org.id

    def background_job() -> None:  # a thread or script with its own session, no app context
        with Session(engine) as session:
            session.add(t.Membership(organization_id=org_id, email="bg@x.io"))
            session.commit()

    job = threading.Thread(target=background_job)
    job.start()
    job.join(30)

    assert stripe.seats(sub, PRO_MONTHLY) == 3


def test_session_joined_to_an_outer_transaction(t: AppUnderTest, stripe: Any) -> None:
    """The session's commit only releases a savepoint: the sync waits for the real commit."""
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, stripe, org.id)
    finished = threading.Event()
    before_outer_commit: list[int] = []

    def request_in_outer_transaction() -> None:
        with t.app.app_context(), t.db.engine.connect() as conn:
            outer = conn.begin()
            session = Session(bind=conn, join_transaction_mode="create_savepoint")
            session.add(t.Membership(organization_id=org.id, email="o@x.io"))
            session.commit()
            before_outer_commit.append(stripe.seats(sub, PRO_MONTHLY))
            outer.commit()
        finished.set()

    job = threading.Thread(target=request_in_outer_transaction, daemon=True)
    job.start()
    assert finished.wait(20), "commit() hung inside the outer transaction"
    assert before_outer_commit == [2]  # nothing was sent before the real commit
    assert wait_for(lambda: stripe.seats(sub, PRO_MONTHLY) == 3, timeout=20)


def test_explicit_sync_that_fails_is_retried_in_the_background(
    t: AppUnderTest, stripe: Any
) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, stripe, org.id, seats=5)
    stripe.faults.fail_next(1, status=500, path_prefix="/v1/subscription_items/")  # the write

    result = t.billing.sync_organization(org.id)

    assert result.action == "retrying"
    assert wait_for(lambda: stripe.seats(sub, PRO_MONTHLY) == 2, timeout=20)
    assert wait_for(lambda: outbox_rows(t) == [], timeout=10)


def test_failed_explicit_sync_does_not_park_a_newer_change(
    make_app: AppFactory, stripe: Any
) -> None:
    t = make_app({"SEAT_BILLING_SYNC_MODE": "deferred", "SEAT_BILLING_SYNC_DEBOUNCE_SECONDS": 0.2})
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 2)
        sub = subscribe(t, stripe, org.id)
        org_id = org.id
        assert wait_for(lambda: outbox_rows(t) == [])
    # The explicit sync's write (its one request) is slow, then refused for good (400).
    stripe.faults.stall_next(1, seconds=1.5, apply=False, status=400,
                             path_prefix="/v1/subscription_items/", method="POST")
    results: list[Any] = []

    def explicit() -> None:
        with t.app.app_context():
            results.append(t.billing.sync_organization(org_id))

    with t.app.app_context():
        t.add_members(org_id, 1)  # 3: the explicit sync below has a write to send
    job = threading.Thread(target=explicit)
    job.start()
    time.sleep(0.5)
    with t.app.app_context():
        t.add_members(org_id, 1)  # committed while the explicit sync waits on the provider
    job.join(20)

    assert results and results[0].action == "refused"
    assert wait_for(lambda: stripe.seats(sub, PRO_MONTHLY) == 4, timeout=20)
    assert len(seat_writes(stripe)) == 1


def test_a_session_bound_per_model_without_a_default_bind(t: AppUnderTest, stripe: Any) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, stripe, org.id)

    with Session(binds={t.Membership: t.db.engine, t.Organization: t.db.engine}) as session:
        session.add(t.Membership(organization_id=org.id, email="bound@x.io"))
        session.commit()

    assert stripe.seats(sub, PRO_MONTHLY) == 3
    assert outbox_rows(t) == []


def test_a_listing_snapshot_made_stale_by_another_sync_is_not_written_from(
    t: AppUnderTest, stripe: Any
) -> None:
    """``flask seats resync`` hands the sync the subscription it listed, to save a GET. If
    another process synced the organization between the listing and the push, the snapshot is
    stale: the push must read the provider again rather than write the same quantity twice and
    record the step twice in the ledger."""
    from flask_seat_billing.state import get_state

    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, stripe, org.id)
    state = get_state()
    listed = state.provider.retrieve_subscription(sub)  # what a resync listing saw: 2 seats
    t.add_members(org.id, 2)  # synced inline by this process: 4 seats
    assert stripe.seats(sub, PRO_MONTHLY) == 4
    writes_before = len(seat_writes(stripe))

    result = state.engine.sync(str(org.id), reason="resync", snapshot=listed)

    assert result.action == "unchanged"
    assert len(seat_writes(stripe)) == writes_before
    steps = [(c.from_seats, c.to_seats) for c in t.billing.seat_changes(org.id)]
    assert steps.count((2, 4)) == 1
