"""What only Stripe's side of ownership shows: a buyer-set ``client_reference_id`` (Payment Links)
takes nothing over, and the chosen subscription's plan cap applies. Which subscription is the
organization's on every provider is in tests/behaviour/test_ownership.py, the lifecycle in
tests/behaviour/test_lifecycle.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests import web_helpers
from tests.apps import PRO_MONTHLY, PRO_YEARLY, SEAT_ONLY_PRICE
from tests.conftest import AppFactory, subscribe
from tests.helpers import seat_writes
from tests.web_helpers import Served


@pytest.fixture
def web(make_app: AppFactory, stripe: Any) -> Iterator[Served]:
    yield from web_helpers.serve_app(make_app, stripe)


def _writes_to(stripe: Any, sub: str) -> list[Any]:
    items = {i["id"] for i in stripe.subscription(sub)["items"]["data"]}
    return [w for w in seat_writes(stripe) if w.path.rsplit("/", 1)[-1] in items]


def _delivered(stripe: Any) -> None:
    assert all(d.ok for d in stripe.deliver_pending())



def test_buyer_set_client_reference_id_does_not_take_over_an_organization(
    web: Served, stripe: Any
) -> None:
    t = web.t
    victim = t.add_organization()
    t.add_members(victim.id, 3)
    own = subscribe(t, stripe, victim.id)
    # A Payment Link with ?client_reference_id=<victim>: a cheap plan, no metadata of ours.
    session = stripe.client().v1.checkout.sessions.create(params={
        "mode": "subscription", "client_reference_id": str(victim.id),
        "line_items": [{"price": SEAT_ONLY_PRICE, "quantity": 1}],
        "success_url": f"{web.url}/?session_id={{CHECKOUT_SESSION_ID}}",
    })
    stranger = str(stripe.complete_checkout(session.id)["subscription"])
    _delivered(stripe)
    assert t.billing.complete_checkout(session.id) is not None  # recorded, unlinked

    chosen = t.billing.subscription_for(victim.id)
    assert chosen is not None and chosen.provider_subscription_id == own
    t.add_members(victim.id, 1)
    assert stripe.seats(own, PRO_MONTHLY) == 4
    assert _writes_to(stripe, stranger) == []
    portal = web.post(f"{web.prefix}/portal", json_body={"organization_id": victim.id},
                      headers={"X-User-Org": str(victim.id)})
    assert portal.status == 200, portal.text
    [post] = [r for r in stripe.requests if r.path == "/v1/billing_portal/sessions"]
    assert post.params["customer"] == stripe.subscription(own)["customer"]


def test_the_chosen_subscriptions_plan_caps_the_seats(web: Served, stripe: Any) -> None:
    """The plan cap (``limits``) that applies is that of the subscription chosen as the
    organization's, not that of the newest row. (Which one is chosen, on every provider:
    tests/behaviour/test_ownership.py.)"""
    t = web.t
    org = t.add_organization()
    t.add_members(org.id, 2)
    current = subscribe(t, stripe, org.id, plan="pro-yearly")
    unrelated = str(stripe.create_subscription(
        items=[{"price": stripe.create_price(unit_amount=500)["id"], "quantity": 1}],
    )["id"])
    t.billing.link_subscription(org.id, unrelated)  # newest row, but no configured plan
    t.add_members(org.id, 1)
    assert stripe.seats(current, PRO_YEARLY) == 3

    t.add_members(org.id, 7)  # pro-yearly caps at 10 seats
    with pytest.raises(Exception, match="seats"):
        t.billing.check("before_invitation_create", organization_id=org.id)
