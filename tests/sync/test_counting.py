"""Billable seats: included seats, minimum, pending invitations, a custom rule."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.apps import PRO_MONTHLY, AppUnderTest
from tests.conftest import AppFactory, subscribe


def test_included_seats_are_not_billed(make_app: AppFactory, stripe: Any) -> None:
    t = make_app({"SEAT_BILLING_INCLUDED_SEATS": 3, "SEAT_BILLING_MINIMUM_SEATS": 0})
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 2)
        assert t.billing.billable_seats(org.id) == 0
        sub = subscribe(t, stripe, org.id, seats=1)

        t.add_members(org.id, 3)

        assert stripe.seats(sub, PRO_MONTHLY) == 2


def test_minimum_seats_floor_the_quantity(make_app: AppFactory, stripe: Any) -> None:
    t = make_app({"SEAT_BILLING_MINIMUM_SEATS": 5})
    with t.app.app_context():
        org = t.add_organization()
        members = t.add_members(org.id, 6)
        sub = subscribe(t, stripe, org.id)
        assert stripe.seats(sub, PRO_MONTHLY) == 6

        for m in members[:4]:
            t.db.session.delete(m)
        t.db.session.commit()

        assert stripe.seats(sub, PRO_MONTHLY) == 5


def test_pending_invitations_count_when_configured(make_app: AppFactory, stripe: Any) -> None:
    t = make_app({"SEAT_BILLING_COUNT_PENDING_INVITATIONS": True})
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 2)
        sub = subscribe(t, stripe, org.id)
        future = dt.datetime.now() + dt.timedelta(days=7)
        past = dt.datetime.now() - dt.timedelta(days=7)

        t.db.session.add_all([
            t.Invitation(organization_id=org.id, email="a@x.io", expires_at=future),
            t.Invitation(organization_id=org.id, email="b@x.io", expires_at=past),
        ])
        t.db.session.commit()

        assert stripe.seats(sub, PRO_MONTHLY) == 3


def test_pending_invitations_ignored_by_default(t: AppUnderTest, stripe: Any) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    subscribe(t, stripe, org.id)
    t.db.session.add(t.Invitation(organization_id=org.id, email="a@x.io"))
    t.db.session.commit()

    assert t.billing.billable_seats(org.id) == 2


def test_custom_counting_rule_replaces_the_default(t: AppUnderTest, stripe: Any) -> None:
    @t.billing.seat_counter
    def admins_are_free(organization_id: Any, count: Any) -> int:
        admins = t.Membership.query.filter_by(
            organization_id=organization_id, role="admin", deleted_at=None
        ).count()
        return max(1, count.members - admins)

    org = t.add_organization()
    members = t.add_members(org.id, 4)
    sub = subscribe(t, stripe, org.id)
    assert stripe.seats(sub, PRO_MONTHLY) == 4

    members[0].role = "admin"
    t.db.session.commit()

    assert stripe.seats(sub, PRO_MONTHLY) == 3


def test_string_and_uuid_organization_keys(make_app: AppFactory, stripe: Any) -> None:
    import uuid

    for key_type, make_id in (("str", lambda: "org-acme"), ("uuid", uuid.uuid4)):
        t = make_app(key_type=key_type)
        with t.app.app_context():
            org = t.Organization(id=make_id(), name="Acme")
            t.db.session.add(org)
            t.db.session.commit()
            t.add_members(org.id, 2)
            sub = subscribe(t, stripe, org.id)
            t.add_members(org.id, 1)
            assert stripe.seats(sub, PRO_MONTHLY) == 3
            assert t.billing.billable_seats(org.id) == 3
            t.db.session.remove()
