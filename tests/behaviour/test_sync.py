"""The provider's seats follow every way membership can change, on every provider."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from tests.apps import AppUnderTest
from tests.behaviour.conftest import AppFactory, World
from tests.helpers import ledger_rows, outbox_rows


def test_member_joining_raises_the_seats(t: AppUnderTest, provider: World) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = provider.subscribe(t, org.id)
    assert provider.seats(sub) == 2

    t.add_members(org.id, 1)

    assert provider.seats(sub) == 3
    local = t.billing.subscription_for(org.id)
    assert local is not None and local.seats == 3
    [change] = ledger_rows(t)
    assert (change["from_seats"], change["to_seats"], change["reason"]) == (2, 3, "membership")
    assert outbox_rows(t) == []


def test_member_leaving_lowers_the_seats(t: AppUnderTest, provider: World) -> None:
    org = t.add_organization()
    members = t.add_members(org.id, 3)
    sub = provider.subscribe(t, org.id)

    t.db.session.delete(members[0])
    t.db.session.commit()

    assert provider.seats(sub) == 2
    assert len(provider.seat_writes()) == 1


def test_five_hundred_members_in_one_transaction_make_one_write(
    t: AppUnderTest, provider: World
) -> None:
    org = t.add_organization()
    t.add_members(org.id, 1)
    sub = provider.subscribe(t, org.id)

    t.add_members(org.id, 500)

    assert provider.seats(sub) == 501
    assert len(provider.seat_writes()) == 1


def test_rolled_back_transaction_changes_nothing(t: AppUnderTest, provider: World) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = provider.subscribe(t, org.id)

    t.add_members(org.id, 3, commit=False)
    t.db.session.flush()
    t.db.session.rollback()

    assert provider.seats(sub) == 2
    assert provider.seat_writes() == []
    assert outbox_rows(t) == []


def test_rolled_back_savepoint_changes_nothing(t: AppUnderTest, provider: World) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = provider.subscribe(t, org.id)

    kept = t.Membership(organization_id=org.id, email="kept@example.com")
    t.db.session.add(kept)
    savepoint = t.db.session.begin_nested()
    t.add_members(org.id, 4, commit=False)
    t.db.session.flush()
    savepoint.rollback()
    t.db.session.commit()

    assert provider.seats(sub) == 3
    assert len(provider.seat_writes()) == 1


def test_savepoint_rollback_alone_sends_nothing(t: AppUnderTest, provider: World) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = provider.subscribe(t, org.id)

    savepoint = t.db.session.begin_nested()
    t.add_members(org.id, 4, commit=False)
    t.db.session.flush()
    savepoint.rollback()
    t.db.session.commit()

    assert provider.seats(sub) == 2
    assert provider.seat_writes() == []
    assert outbox_rows(t) == []


def test_member_moved_between_organizations_updates_both(
    t: AppUnderTest, provider: World
) -> None:
    a, b = t.add_organization("A"), t.add_organization("B")
    movers = t.add_members(a.id, 3)
    t.add_members(b.id, 1)
    sub_a, sub_b = provider.subscribe(t, a.id), provider.subscribe(t, b.id)

    movers[0].organization_id = b.id
    t.db.session.commit()

    assert provider.seats(sub_a) == 2
    assert provider.seats(sub_b) == 2


def test_soft_deleted_member_is_not_billed(t: AppUnderTest, provider: World) -> None:
    org = t.add_organization()
    members = t.add_members(org.id, 3)
    sub = provider.subscribe(t, org.id)

    members[1].deleted_at = dt.datetime(2026, 1, 1)
    t.db.session.commit()
    assert provider.seats(sub) == 2

    members[1].deleted_at = None
    t.db.session.commit()
    assert provider.seats(sub) == 3


def test_unrelated_attribute_change_costs_no_provider_call(
    t: AppUnderTest, provider: World
) -> None:
    org = t.add_organization()
    members = t.add_members(org.id, 2)
    provider.subscribe(t, org.id)
    before = len(provider.stand_in.requests)

    members[0].role = "admin"
    t.db.session.commit()

    assert len(provider.stand_in.requests) == before
    assert outbox_rows(t) == []


def test_bulk_orm_insert_is_seen(t: AppUnderTest, provider: World) -> None:
    org = t.add_organization()
    t.add_members(org.id, 1)
    sub = provider.subscribe(t, org.id)

    t.db.session.execute(
        sa.insert(t.Membership),
        [{"organization_id": org.id, "email": f"bulk{i}@example.com"} for i in range(20)],
    )
    t.db.session.commit()

    assert provider.seats(sub) == 21
    assert len(provider.seat_writes()) == 1


def test_bulk_orm_delete_is_seen(t: AppUnderTest, provider: World) -> None:
    org = t.add_organization()
    t.add_members(org.id, 5)
    sub = provider.subscribe(t, org.id)

    t.db.session.execute(sa.delete(t.Membership).where(t.Membership.email.like("user1%")))
    t.db.session.commit()

    assert provider.seats(sub) == 4


def test_bulk_orm_update_soft_deleting_is_seen(t: AppUnderTest, provider: World) -> None:
    org = t.add_organization()
    t.add_members(org.id, 4)
    sub = provider.subscribe(t, org.id)

    t.db.session.execute(
        sa.update(t.Membership)
        .where(t.Membership.organization_id == org.id, t.Membership.email.like("user0%"))
        .values(deleted_at=dt.datetime(2026, 1, 1))
    )
    t.db.session.commit()

    assert provider.seats(sub) == 3


def test_bulk_update_moving_members_updates_both(t: AppUnderTest, provider: World) -> None:
    a, b = t.add_organization("A"), t.add_organization("B")
    t.add_members(a.id, 4)
    t.add_members(b.id, 1)
    sub_a, sub_b = provider.subscribe(t, a.id), provider.subscribe(t, b.id)

    t.db.session.execute(
        sa.update(t.Membership)
        .where(
            t.Membership.organization_id == a.id,
            t.Membership.email.in_([f"user0-{a.id}@example.com", f"user1-{a.id}@example.com"]),
        )
        .values(organization_id=b.id)
        .execution_options(synchronize_session=False)
    )
    t.db.session.commit()

    assert provider.seats(sub_a) == 2
    assert provider.seats(sub_b) == 3


def test_a_rule_that_binds_the_current_time_counts_at_each_sync(
    make_app: AppFactory, provider: World
) -> None:
    """A member whose departure is scheduled (``deleted_at`` ahead) counts until it comes. The
    app's rule binds the time when the statement is sent (``callable_``), so every sync must
    count at its own time, not at the first sync's (the prebuilt first read is reused)."""
    now = [dt.datetime(2026, 1, 1)]
    t = make_app(billable_filter=lambda M: sa.or_(
        M.deleted_at.is_(None),
        M.deleted_at > sa.bindparam("app_now", callable_=lambda: now[0], type_=sa.DateTime())))
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 2)
        t.db.session.add(t.Membership(organization_id=org.id, email="leaving@x.io",
                                      deleted_at=dt.datetime(2026, 1, 2)))
        t.db.session.commit()
        sub = provider.subscribe(t, org.id)
        assert provider.seats(sub) == 3
        t.add_members(org.id, 1)
        assert provider.seats(sub) == 4

        now[0] = dt.datetime(2026, 1, 3)  # the departure has come
        t.add_members(org.id, 1)

        assert t.billing.billable_seats(org.id) == 4
        assert provider.seats(sub) == 4
