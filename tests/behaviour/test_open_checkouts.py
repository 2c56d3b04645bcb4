"""Two checkouts opened before either is paid (a second tab, a double click) must not end in two
subscriptions, on every provider: the second request for the same plan reuses the open checkout,
a paid one answers "already subscribed", and a second subscription that gets paid anyway is
reported. What the providers do differently with another plan while a checkout is open (Stripe
expires the open one; Polar cannot close a checkout, so it is refused) is in
tests/providers/<name>/test_*_open_checkouts.py."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from flask_seat_billing import signals
from tests.apps import AppUnderTest
from tests.behaviour.conftest import World


def _checkout(t: AppUnderTest, org_id: Any, plan: str) -> Any:
    return t.app.test_client().post(
        "/billing/checkout", json={"organization_id": org_id, "plan": plan},
        headers={"Accept": "application/json"},
    )


def _live(provider: World) -> list[str]:
    s = provider.stand_in
    return [i for i in s.subscription_ids() if s.subscription_status(i) in ("active", "trialing")]


def test_second_checkout_of_same_plan_reuses_the_open_one(
    t: AppUnderTest, provider: World
) -> None:
    t.billing.authorize(lambda request, organization_id, action: True)
    org = t.add_organization()
    t.add_members(org.id, 2)
    plan = provider.plan.name

    first, second = _checkout(t, org.id, plan), _checkout(t, org.id, plan)

    assert first.status_code == second.status_code == 200, second.text
    assert second.json["id"] == first.json["id"]
    assert second.json["url"] == first.json["url"]
    provider.stand_in.complete_checkout(first.json["id"])
    t.billing.complete_checkout(first.json["id"])
    t.add_members(org.id, 3)
    [sub] = _live(provider)
    assert provider.seats(sub) == 5
    assert _checkout(t, org.id, plan).status_code == 409  # subscribed now: the portal


def test_paid_but_unrecorded_checkout_answers_already_subscribed(
    t: AppUnderTest, provider: World
) -> None:
    t.billing.authorize(lambda request, organization_id, action: True)
    org = t.add_organization()
    t.add_members(org.id, 1)
    first = _checkout(t, org.id, provider.plan.name)
    provider.stand_in.complete_checkout(first.json["id"])  # paid; no webhook, no success page

    again = _checkout(t, org.id, provider.other_plan.name)

    assert again.status_code == 409, again.text
    assert again.json["code"] == "ALREADY_SUBSCRIBED"
    assert len(provider.stand_in.subscription_ids()) == 1
    assert t.billing.subscription_for(org.id) is not None


def test_completed_second_subscription_is_logged_and_signalled(
    t: AppUnderTest, provider: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A checkout the app cannot see as open (opened before this version recorded checkout ids)
    is paid after another: the completion is reported, nothing is canceled."""
    s = provider.stand_in
    t.billing.authorize(lambda request, organization_id, action: True)
    org = t.add_organization()
    t.add_members(org.id, 2)
    first = _checkout(t, org.id, provider.plan.name)
    state = t.app.extensions["seat_billing"]
    tags = state.tables.owner_tags
    with t.app.app_context():
        with state.sql_engine().begin() as conn:  # as the migration leaves old rows
            conn.execute(tags.update().values(checkout_id=None, plan_name=None,
                                              checkout_status=None))
    second = _checkout(t, org.id, provider.plan.name)
    assert second.status_code == 200, second.text
    assert second.json["id"] != first.json["id"]
    s.complete_checkout(first.json["id"])
    t.billing.complete_checkout(first.json["id"])
    older = t.billing.subscription_for(org.id).provider_subscription_id
    seen: list[dict[str, Any]] = []

    def receiver(app: Any, **kw: Any) -> None:
        seen.append(kw)

    signals.duplicate_subscription.connect(receiver)
    try:
        s.complete_checkout(second.json["id"])
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
    statuses = [s.subscription_status(i) for i in s.subscription_ids()]
    assert statuses == ["active", "active"]  # none canceled
