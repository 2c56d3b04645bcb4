"""One organization, one key, on every provider: every spelling the database stores as the same
organization is billed to that organization's subscription (flask_seat_billing/keys.py). What
is refused, and the seat caps, are the core's: tests/capture/test_organization_keys.py."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from tests.apps import AppUnderTest
from tests.behaviour.conftest import AppFactory, World
from tests.helpers import outbox_rows

MANUAL = {"SEAT_BILLING_SYNC_MODE": "manual"}


def _organization(t: AppUnderTest, org_id: Any) -> Any:
    t.db.session.add(t.Organization(id=org_id, name=f"org {org_id}"))
    t.db.session.commit()
    return org_id


def _outbox_keys(t: AppUnderTest) -> list[str]:
    return sorted(r["organization_key"] for r in outbox_rows(t))


def _subscribed(t: AppUnderTest, provider: World, org_id: Any, members: int) -> str:
    """An organization with ``members`` members and a subscription billing them, outbox empty."""
    _organization(t, org_id)
    t.add_members(org_id, members)
    sub = provider.subscribe(t, org_id)
    t.billing.sync_pending()
    assert _outbox_keys(t) == []
    return sub


@pytest.mark.parametrize("spelling", ["01", " 1", "+1", "1\n", "0001"])
def test_integer_id_spellings_bill_the_organization(
    make_app: AppFactory, provider: World, spelling: str
) -> None:
    t = make_app(MANUAL)
    with t.app.app_context():
        sub = _subscribed(t, provider, 1, 2)

        t.db.session.add_all([t.Membership(organization_id=spelling, email="a@x.io"),
                              t.Membership(organization_id=1, email="b@x.io")])
        t.db.session.commit()

        assert _outbox_keys(t) == ["1"]
        t.billing.sync_pending()
        assert provider.seats(sub) == 4
        assert t.billing.billable_seats(spelling) == 4
        assert _outbox_keys(t) == []
        assert t.billing.pending_syncs() == []


def test_a_member_moved_in_another_spelling_leaves_and_joins_once(
    make_app: AppFactory, provider: World
) -> None:
    t = make_app(MANUAL)
    with t.app.app_context():
        sub_1 = _subscribed(t, provider, 1, 2)
        sub_2 = _subscribed(t, provider, 2, 2)
        member = t.db.session.scalars(
            sa.select(t.Membership).where(t.Membership.organization_id == 1)
        ).first()

        member.organization_id = "+02"
        t.db.session.commit()

        assert _outbox_keys(t) == ["1", "2"]
        t.billing.sync_pending()
        assert provider.seats(sub_1) == 1
        assert provider.seats(sub_2) == 3


def _uuid_spellings(org: uuid.UUID) -> list[str]:
    return [str(org).upper(), f"{{{org}}}", org.urn, org.hex]


def test_uuid_spellings_reach_one_organization_through_the_api(
    make_app: AppFactory, provider: World
) -> None:
    t = make_app(MANUAL, key_type="uuid")
    org = uuid.uuid4()
    upper, braced, urn, plain_hex = _uuid_spellings(org)
    with t.app.app_context():
        _organization(t, org)
        t.add_members(org, 2)
        sub = provider.stand_in.subscribe(org, provider.plan, 2)

        linked = t.billing.link_subscription(upper, sub)
        assert linked.organization_key == str(org)
        assert t.billing.billable_seats(braced) == 2
        assert t.billing.seat_count(urn).members == 2
        found = t.billing.subscription_for(plain_hex)
        assert found is not None and found.provider_subscription_id == sub

        t.add_members(org, 1)
        result = t.billing.sync_organization(braced)
        assert (result.action, result.organization_id) == ("updated", org)
        assert provider.seats(sub) == 3
        assert [c.to_seats for c in t.billing.seat_changes(upper)] == [3]


def test_uuid_spellings_saved_on_members_bill_the_organization(
    make_app: AppFactory, provider: World
) -> None:
    t = make_app(MANUAL, key_type="uuid")
    if t.app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLAlchemy's Uuid type binds only uuid.UUID values on SQLite")
    org = uuid.uuid4()
    with t.app.app_context():
        sub = _subscribed(t, provider, org, 1)

        t.db.session.add_all([t.Membership(organization_id=spelling, email=f"{n}@x.io")
                              for n, spelling in enumerate(_uuid_spellings(org)[:2])])
        t.db.session.commit()

        assert _outbox_keys(t) == [str(org)]
        t.billing.sync_pending()
        assert provider.seats(sub) == 3
