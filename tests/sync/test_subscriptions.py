"""What a sync does depending on the organization's subscription."""

from __future__ import annotations

from typing import Any

from tests.apps import PRO_MONTHLY, SEAT_PRICE, TEAM_MONTHLY, AppUnderTest
from tests.conftest import subscribe
from tests.helpers import outbox_rows, seat_writes


def test_organization_without_subscription_sends_nothing(t: AppUnderTest, stripe: Any) -> None:
    org = t.add_organization()
    t.add_members(org.id, 3)

    result = t.billing.sync_organization(org.id)

    assert result.action == "no_subscription"
    assert result.billable == 3
    assert stripe.writes() == []
    assert outbox_rows(t) == []


def test_canceled_subscription_is_not_updated(t: AppUnderTest, stripe: Any) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, stripe, org.id)
    stripe.cancel_subscription(sub)

    t.add_members(org.id, 1)

    assert seat_writes(stripe) == []
    assert t.billing.subscription_for(org.id).status == "canceled"
    assert outbox_rows(t) == []


def test_seat_only_plan_updates_its_single_item(t: AppUnderTest, stripe: Any) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, stripe, org.id, plan="team-monthly")
    assert len(stripe.subscription(sub)["items"]["data"]) == 1

    t.add_members(org.id, 2)

    assert stripe.seats(sub, TEAM_MONTHLY) == 4


def test_base_item_keeps_quantity_one(t: AppUnderTest, stripe: Any) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, stripe, org.id)

    t.add_members(org.id, 5)

    items = stripe.subscription(sub)["items"]["data"]
    quantities = {i["price"]["id"]: i["quantity"] for i in items}
    assert quantities == {"price_base_m": 1, SEAT_PRICE: 7}


def test_matching_quantity_sends_no_write(t: AppUnderTest, stripe: Any) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    subscribe(t, stripe, org.id)

    result = t.billing.sync_organization(org.id)

    assert result.action == "unchanged"
    assert seat_writes(stripe) == []


def test_write_uses_plan_proration_and_deterministic_key(t: AppUnderTest, stripe: Any) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, stripe, org.id)

    t.add_members(org.id, 1)

    [write] = seat_writes(stripe)
    assert write.params["proration_behavior"] == "create_prorations"
    assert write.idempotency_key.startswith(f"fsb:{sub}:")
    assert write.idempotency_key.endswith(":3")


def test_always_invoice_setting_is_sent(make_app: Any, stripe: Any) -> None:
    t = make_app({"SEAT_BILLING_PRORATION_BEHAVIOR": "always_invoice"})
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 1)
        subscribe(t, stripe, org.id)
        t.add_members(org.id, 1)
        [write] = seat_writes(stripe)
        assert write.params["proration_behavior"] == "always_invoice"


def test_back_and_forth_changes_use_distinct_keys(t: AppUnderTest, stripe: Any) -> None:
    org = t.add_organization()
    t.add_members(org.id, 3)
    sub = subscribe(t, stripe, org.id)

    [extra] = t.add_members(org.id, 1)
    t.db.session.delete(extra)
    t.db.session.commit()
    t.add_members(org.id, 1)

    keys = [w.idempotency_key for w in seat_writes(stripe)]
    assert len(keys) == 3 and len(set(keys)) == 3
    assert stripe.seats(sub, PRO_MONTHLY) == 4
