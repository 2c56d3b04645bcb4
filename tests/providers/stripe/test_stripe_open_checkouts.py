"""A checkout of another plan while one is open: Stripe can expire a Checkout Session, so the
open one is expired and the customer can no longer pay it. (Polar cannot close a checkout: see
tests/providers/polar/test_polar_open_checkouts.py; what both do is in
tests/behaviour/test_open_checkouts.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from tests.apps import AppUnderTest


def _checkout(t: AppUnderTest, org_id: Any, plan: str = "pro-monthly") -> Any:
    return t.app.test_client().post(
        "/billing/checkout", json={"organization_id": org_id, "plan": plan},
        headers={"Accept": "application/json"},
    )


def _live(stripe: Any) -> list[Any]:
    return [s for s in stripe.subscriptions() if s["status"] in ("active", "trialing")]


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
