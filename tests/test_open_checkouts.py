"""Two checkouts opened before either is paid (a second tab, a double click) must not end in two
subscriptions: the second request reuses the open checkout, or expires it for another plan."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from flask_seat_billing import signals
from tests.apps import PRO_MONTHLY, AppUnderTest


def _checkout(t: AppUnderTest, org_id: Any, plan: str = "pro-monthly") -> Any:
    return t.app.test_client().post(
        "/billing/checkout", json={"organization_id": org_id, "plan": plan},
        headers={"Accept": "application/json"},
    )


def _live(stripe: Any) -> list[Any]:
    return [s for s in stripe.subscriptions() if s["status"] in ("active", "trialing")]


def test_second_checkout_of_same_plan_reuses_the_open_one(t: AppUnderTest, stripe: Any) -> None:
    t.billing.authorize(lambda request, organization_id, action: True)
    org = t.add_organization()
    t.add_members(org.id, 2)

    first, second = _checkout(t, org.id), _checkout(t, org.id)

    assert first.status_code == second.status_code == 200, second.text
    assert second.json["id"] == first.json["id"]
    assert second.json["url"] == first.json["url"]
    stripe.complete_checkout(first.json["id"])
    t.billing.complete_checkout(first.json["id"])
    t.add_members(org.id, 3)
    [sub] = _live(stripe)
    assert stripe.seats(sub["id"], PRO_MONTHLY) == 5
    assert _checkout(t, org.id).status_code == 409  # subscribed now: the portal, not checkout


def test_checkout_of_another_plan_expires_the_open_one(t: AppUnderTest, stripe: Any) -> None:
    t.billing.authorize(lambda request, organization_id, action: True)
    org = t.add_organization()
    t.add_members(org.id, 2)

    monthly = _checkout(t, org.id, "pro-monthly")
    yearly = _checkout(t, org.id, "pro-yearly")

    assert yearly.status_code == 200, yearly.text
    assert yearly.json["id"] != monthly.json["id"]
    old = stripe.checkout_session(monthly.json["id"])
    assert (old["status"], old["url"]) == ("expired", None)
    with pytest.raises(Exception, match="no longer active"):
        stripe.complete_checkout(monthly.json["id"])  # the customer can no longer pay it
    stripe.complete_checkout(yearly.json["id"])
    t.billing.complete_checkout(yearly.json["id"])
    assert len(_live(stripe)) == 1
    assert t.billing.subscription_for(org.id).plan_name == "pro-yearly"


def test_paid_but_unrecorded_checkout_answers_already_subscribed(
    t: AppUnderTest, stripe: Any
) -> None:
    t.billing.authorize(lambda request, organization_id, action: True)
    org = t.add_organization()
    t.add_members(org.id, 1)
    first = _checkout(t, org.id)
    stripe.complete_checkout(first.json["id"])  # paid; no webhook, success page not hit

    again = _checkout(t, org.id, "pro-yearly")

    assert again.status_code == 409, again.text
    assert again.json["code"] == "ALREADY_SUBSCRIBED"
    assert len(stripe.subscriptions()) == 1
    assert t.billing.subscription_for(org.id) is not None


def test_completed_second_subscription_is_logged_and_signalled(
    t: AppUnderTest, stripe: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A checkout the app cannot see as open (opened before this version recorded checkout ids)
    is paid after another: the completion is reported, nothing is canceled."""
    t.billing.authorize(lambda request, organization_id, action: True)
    org = t.add_organization()
    t.add_members(org.id, 2)
    first = _checkout(t, org.id)
    state = t.app.extensions["seat_billing"]
    tags = state.tables.owner_tags
    with t.app.app_context():
        with state.sql_engine().begin() as conn:  # as the migration leaves old rows
            conn.execute(tags.update().values(checkout_id=None, plan_name=None,
                                              checkout_status=None))
    second = _checkout(t, org.id)
    assert second.json["id"] != first.json["id"]
    stripe.complete_checkout(first.json["id"])
    t.billing.complete_checkout(first.json["id"])
    older = t.billing.subscription_for(org.id).provider_subscription_id
    seen: list[dict[str, Any]] = []

    def receiver(app: Any, **kw: Any) -> None:
        seen.append(kw)

    signals.duplicate_subscription.connect(receiver)
    try:
        stripe.complete_checkout(second.json["id"])
        with caplog.at_level(logging.ERROR, "flask_seat_billing.checkout"):
            newer = t.billing.complete_checkout(second.json["id"])
            t.billing.complete_checkout(second.json["id"])  # again: reported once
    finally:
        signals.duplicate_subscription.disconnect(receiver)

    assert newer is not None
    assert [kw["other_subscription_ids"] for kw in seen] == [[older]]
    assert seen[0]["subscription_id"] == newer.provider_subscription_id
    assert seen[0]["organization_id"] == org.id
    assert "2 billable subscriptions" in caplog.text
    assert [s["status"] for s in stripe.subscriptions()] == ["active", "active"]  # none canceled
