"""A checkout of another plan while one is open is refused: Polar's API cannot close a checkout.
(What both providers do, such as reusing the open checkout of the same plan, is in
tests/behaviour/test_open_checkouts.py.)"""

from __future__ import annotations

from typing import Any

from tests.apps import AppUnderTest
from tests.providers.polar.conftest import PolarWorld


def _checkout(t: AppUnderTest, org_id: Any, plan: str = "team-monthly") -> Any:
    return t.app.test_client().post(
        "/billing/checkout", json={"organization_id": org_id, "plan": plan},
        headers={"Accept": "application/json"},
    )


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
