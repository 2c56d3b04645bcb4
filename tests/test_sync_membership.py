"""The provider's seat quantity follows every way membership can change."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from tests.apps import SEAT_PRICE, AppUnderTest
from tests.conftest import subscribe
from tests.helpers import ledger_rows, outbox_rows, seat_writes


def test_member_joining_raises_the_quantity(t: AppUnderTest, stripe: Any) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, stripe, org.id)
    assert stripe.item_quantity(sub, SEAT_PRICE) == 2

    t.add_members(org.id, 1)

    assert stripe.item_quantity(sub, SEAT_PRICE) == 3
    assert t.billing.subscription_for(org.id).seats == 3
    [change] = ledger_rows(t)
    assert (change["from_seats"], change["to_seats"], change["reason"]) == (2, 3, "membership")
    assert outbox_rows(t) == []


def test_member_leaving_lowers_the_quantity(t: AppUnderTest, stripe: Any) -> None:
    org = t.add_organization()
    members = t.add_members(org.id, 3)
    sub = subscribe(t, stripe, org.id)

    t.db.session.delete(members[0])
    t.db.session.commit()

    assert stripe.item_quantity(sub, SEAT_PRICE) == 2
    assert len(seat_writes(stripe)) == 1


def test_five_hundred_members_in_one_transaction_make_one_write(
    t: AppUnderTest, stripe: Any
) -> None:
    org = t.add_organization()
    t.add_members(org.id, 1)
    sub = subscribe(t, stripe, org.id)

    t.add_members(org.id, 500)

    assert stripe.item_quantity(sub, SEAT_PRICE) == 501
    assert len(seat_writes(stripe)) == 1


def test_rolled_back_transaction_changes_nothing(t: AppUnderTest, stripe: Any) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, stripe, org.id)

    t.add_members(org.id, 3, commit=False)
    t.db.session.flush()
    t.db.session.rollback()

    assert stripe.item_quantity(sub, SEAT_PRICE) == 2
    assert seat_writes(stripe) == []
    assert outbox_rows(t) == []


def test_rolled_back_savepoint_changes_nothing(t: AppUnderTest, stripe: Any) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, stripe, org.id)

    kept = t.Membership(organization_id=org.id, email="kept@example.com")
    t.db.session.add(kept)
    savepoint = t.db.session.begin_nested()
    t.add_members(org.id, 4, commit=False)
    t.db.session.flush()
    savepoint.rollback()
    t.db.session.commit()

    assert stripe.item_quantity(sub, SEAT_PRICE) == 3
    assert len(seat_writes(stripe)) == 1


def test_savepoint_rollback_alone_sends_nothing(t: AppUnderTest, stripe: Any) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    subscribe(t, stripe, org.id)

    savepoint = t.db.session.begin_nested()
    t.add_members(org.id, 4, commit=False)
    t.db.session.flush()
    savepoint.rollback()
    t.db.session.commit()

    assert seat_writes(stripe) == []
    assert outbox_rows(t) == []


def test_member_moved_between_organizations_updates_both(t: AppUnderTest, stripe: Any) -> None:
    a, b = t.add_organization("A"), t.add_organization("B")
    movers = t.add_members(a.id, 3)
    t.add_members(b.id, 1)
    sub_a, sub_b = subscribe(t, stripe, a.id), subscribe(t, stripe, b.id)

    movers[0].organization_id = b.id
    t.db.session.commit()

    assert stripe.item_quantity(sub_a, SEAT_PRICE) == 2
    assert stripe.item_quantity(sub_b, SEAT_PRICE) == 2


def test_soft_deleted_member_is_not_billed(t: AppUnderTest, stripe: Any) -> None:
    org = t.add_organization()
    members = t.add_members(org.id, 3)
    sub = subscribe(t, stripe, org.id)

    members[1].deleted_at = dt.datetime(2026, 1, 1)
    t.db.session.commit()
    assert stripe.item_quantity(sub, SEAT_PRICE) == 2

    members[1].deleted_at = None
    t.db.session.commit()
    assert stripe.item_quantity(sub, SEAT_PRICE) == 3


def test_unrelated_attribute_change_costs_no_provider_call(t: AppUnderTest, stripe: Any) -> None:
    org = t.add_organization()
    members = t.add_members(org.id, 2)
    subscribe(t, stripe, org.id)
    before = len(stripe.requests)

    members[0].role = "admin"
    t.db.session.commit()

    assert len(stripe.requests) == before
    assert outbox_rows(t) == []


def test_bulk_orm_insert_is_seen(t: AppUnderTest, stripe: Any) -> None:
    org = t.add_organization()
    t.add_members(org.id, 1)
    sub = subscribe(t, stripe, org.id)

    t.db.session.execute(
        sa.insert(t.Membership),
        [{"organization_id": org.id, "email": f"bulk{i}@example.com"} for i in range(20)],
    )
    t.db.session.commit()

    assert stripe.item_quantity(sub, SEAT_PRICE) == 21
    assert len(seat_writes(stripe)) == 1


def test_bulk_orm_delete_is_seen(t: AppUnderTest, stripe: Any) -> None:
    org = t.add_organization()
    t.add_members(org.id, 5)
    sub = subscribe(t, stripe, org.id)

    t.db.session.execute(
        sa.delete(t.Membership).where(t.Membership.email.like("user1%"))
    )
    t.db.session.commit()

    assert stripe.item_quantity(sub, SEAT_PRICE) == 4


def test_bulk_orm_update_soft_deleting_is_seen(t: AppUnderTest, stripe: Any) -> None:
    org = t.add_organization()
    t.add_members(org.id, 4)
    sub = subscribe(t, stripe, org.id)

    t.db.session.execute(
        sa.update(t.Membership)
        .where(t.Membership.organization_id == org.id, t.Membership.email.like("user0%"))
        .values(deleted_at=dt.datetime(2026, 1, 1))
    )
    t.db.session.commit()

    assert stripe.item_quantity(sub, SEAT_PRICE) == 3


def test_bulk_update_moving_members_updates_both(t: AppUnderTest, stripe: Any) -> None:
    a, b = t.add_organization("A"), t.add_organization("B")
    t.add_members(a.id, 4)
    t.add_members(b.id, 1)
    sub_a, sub_b = subscribe(t, stripe, a.id), subscribe(t, stripe, b.id)

    t.db.session.execute(
        sa.update(t.Membership)
        .where(t.Membership.organization_id == a.id, t.Membership.email.in_(
            [f"user0-{a.id}@example.com", f"user1-{a.id}@example.com"]))
        .values(organization_id=b.id)
        .execution_options(synchronize_session=False)
    )
    t.db.session.commit()

    assert stripe.item_quantity(sub_a, SEAT_PRICE) == 2
    assert stripe.item_quantity(sub_b, SEAT_PRICE) == 3
