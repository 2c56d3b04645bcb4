"""Stripe delivers late, twice and out of order: the local rows must still end equal to Stripe's."""

from __future__ import annotations

from typing import Any

import pytest

from tests import web_helpers
from tests.apps import BASE_PRICE, SEAT_PRICE
from tests.web_helpers import (
    Served,
    local_row,
    local_state,
    table_rows,
)

_web = pytest.fixture(name="web")(web_helpers.web)
_signals = pytest.fixture(name="signals_seen")(web_helpers.signals_seen)


def _dashboard(stripe: Any, t: Any, org_id: Any, seats: int) -> str:
    """A subscription made in the dashboard, which the app is told is the organization's."""
    sub = str(stripe.create_subscription(
        items=[{"price": BASE_PRICE, "quantity": 1}, {"price": SEAT_PRICE, "quantity": seats}],
        metadata={"organization_id": str(org_id), "plan": "pro-monthly"},
    )["id"])
    t.billing.link_subscription(org_id, sub)
    return sub


def _stripe_state(stripe: Any, t: Any) -> list[tuple[Any, ...]]:
    """What the local rows should say: Stripe's subscriptions, linked by their metadata."""
    return sorted(
        (sub["id"], sub["metadata"].get("organization_id"), sub["status"],
         stripe.item_quantity(sub["id"], SEAT_PRICE), "pro-monthly", sub["cancel_at_period_end"])
        for sub in stripe.subscriptions()
    )


def _history(web: Served, stripe: Any) -> dict[str, Any]:
    """A busy account: a checkout, dashboard edits, pause/resume, dunning and cancellations."""
    t = web.t
    a, b, c, d = (t.add_organization(n) for n in "ABCD")
    t.add_members(a.id, 3)
    answer = web.checkout(a.id)
    assert answer.status == 200, answer.text
    stripe.complete_checkout(answer.json["url"].rsplit("/", 1)[-1])
    t.add_members(a.id, 2)  # joined while the webhook was on its way

    sub_b = _dashboard(stripe, t, b.id, 2)
    stripe.set_item_quantity(sub_b, SEAT_PRICE, 5)
    stripe.cancel_subscription(sub_b, at_period_end=True)
    sub_c = _dashboard(stripe, t, c.id, 1)
    stripe.pause_subscription(sub_c)
    stripe.resume_subscription(sub_c)
    stripe.set_subscription_status(sub_c, "past_due")
    sub_d = _dashboard(stripe, t, d.id, 4)
    stripe.cancel_subscription(sub_d)
    return {"a": a.id, "b": sub_b, "c": sub_c, "d": sub_d}


@pytest.mark.parametrize(
    ("order", "seed"), [("reversed", None), ("shuffled", 1), ("shuffled", 2), ("sequential", None)]
)
def test_every_event_three_times_in_any_order_ends_equal_to_stripe(
    web: Served, stripe: Any, order: str, seed: int | None,
    signals_seen: dict[str, list[Any]],
) -> None:
    ids = _history(web, stripe)
    event_count = len(stripe.events())

    deliveries = stripe.deliver_pending(times=3, order=order, seed=seed)
    assert len(deliveries) == 3 * event_count
    assert all(d.ok for d in deliveries), [d for d in deliveries if not d.ok]
    # The follow-up sync of the checkout changed Stripe; its own events arrive last.
    assert all(d.ok for d in stripe.deliver_pending(times=2, order="reversed"))

    assert local_state(web.t) == _stripe_state(stripe, web.t)
    assert stripe.item_quantity(local_row(web.t, ids["a"]).provider_subscription_id,
                                SEAT_PRICE) == 5
    assert len(signals_seen["checkout_completed"]) == 1
    event_rows = [r["event_id"] for r in table_rows(web.t, "webhook_events")
                  if r["event_id"].startswith("evt_")]
    assert len(event_rows) == len(set(event_rows)) == len(stripe.events())


def test_stale_event_arriving_last_does_not_roll_back(web: Served, stripe: Any) -> None:
    org = web.t.add_organization()
    sub = _dashboard(stripe, web.t, org.id, 2)
    stripe.set_item_quantity(sub, SEAT_PRICE, 8)
    first_update = stripe.events("customer.subscription.updated")[0]["id"]
    stripe.set_item_quantity(sub, SEAT_PRICE, 4)
    latest = [e["id"] for e in stripe.events() if e["id"] != first_update]

    for event_id in latest:
        assert all(d.ok for d in stripe.deliver(event_id))
    assert local_row(web.t, org.id).seats == 4
    assert all(d.ok for d in stripe.deliver(first_update))  # says 8, arrives last

    assert local_row(web.t, org.id).seats == 4
