"""A second checkout request while one is open never ends in two Polar subscriptions: the same
plan reuses the open checkout; another plan is refused (Polar's API cannot close a checkout)."""

from __future__ import annotations

from typing import Any

from tests.apps import AppUnderTest
from tests.providers.polar.conftest import PolarWorld


def _checkout(t: AppUnderTest, org_id: Any, plan: str = "team-monthly") -> Any:
    return t.app.test_client().post(
        "/billing/checkout", json={"organization_id": org_id, "plan": plan},
        headers={"Accept": "application/json"},
    )


def test_second_checkout_of_same_plan_reuses_the_open_one(
    t: AppUnderTest, polar: PolarWorld
) -> None:
    t.billing.authorize(lambda request, organization_id, action: True)
    org = t.add_organization()
    t.add_members(org.id, 2)

    first, second = _checkout(t, org.id), _checkout(t, org.id)

    assert first.status_code == second.status_code == 200, second.text
    assert second.json["id"] == first.json["id"]
    polar.api.complete_checkout(first.json["id"])
    t.billing.complete_checkout(first.json["id"])
    t.add_members(org.id, 1)
    [sub] = polar.api.subscription_ids()
    assert polar.api.subscription(sub)["seats"] == 3


def test_checkout_of_another_plan_is_refused_while_one_is_open(
    t: AppUnderTest, polar: PolarWorld
) -> None:
    t.billing.authorize(lambda request, organization_id, action: True)
    org = t.add_organization()
    t.add_members(org.id, 2)
    first = _checkout(t, org.id)

    other = _checkout(t, org.id, "capped")

    assert other.status_code == 409, other.text
    assert other.json["code"] == "CHECKOUT_STILL_OPEN"
    expires = polar.api.checkout(first.json["id"])["expires_at"]
    assert other.json["expires_at"][:19] == expires[:19]
    assert "still open until" in other.json["error"]
    polar.api.complete_checkout(first.json["id"])
    assert _checkout(t, org.id, "capped").json["code"] == "ALREADY_SUBSCRIBED"
    assert len(polar.api.subscription_ids()) == 1
