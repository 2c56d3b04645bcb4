"""The provider delivers late, twice and out of order: the local rows must still end equal to the
provider's, on every provider."""

from __future__ import annotations

from typing import Any

import pytest

from tests import web_helpers
from tests.behaviour.conftest import World
from tests.web_helpers import (
    Served,
    local_row,
    local_state,
    table_rows,
)

_signals = pytest.fixture(name="signals_seen")(web_helpers.signals_seen)


def _dashboard(provider: World, t: Any, org_id: Any, seats: int) -> str:
    """A subscription made in the dashboard, which the app is told is the organization's."""
    return provider.subscribe(t, org_id, seats)


def _history(web: Served, provider: World) -> dict[str, Any]:
    """A busy account: a checkout, dashboard edits, pause/resume, dunning and cancellations."""
    t = web.t
    s = provider.stand_in
    a, b, c, d = (t.add_organization(n) for n in "ABCD")
    t.add_members(a.id, 3)
    answer = provider.checkout(web, a.id)
    assert answer.status == 200, answer.text
    s.complete_checkout(provider.checkout_id(answer))
    t.add_members(a.id, 2)  # joined while the webhook was on its way

    sub_b = _dashboard(provider, t, b.id, 2)
    s.set_seats(sub_b, 5)
    s.cancel_subscription(sub_b, at_period_end=True)
    sub_c = _dashboard(provider, t, c.id, 1)
    s.pause_subscription(sub_c)
    s.resume_subscription(sub_c)
    s.set_status(sub_c, "past_due")
    sub_d = _dashboard(provider, t, d.id, 4)
    s.cancel_subscription(sub_d)
    return {"a": a.id, "b": sub_b, "c": sub_c, "d": sub_d}


@pytest.mark.parametrize(
    ("order", "seed"), [("reversed", None), ("shuffled", 1), ("shuffled", 2), ("sequential", None)]
)
def test_every_event_three_times_in_any_order_ends_equal_to_the_provider(
    web: Served, provider: World, order: str, seed: int | None,
    signals_seen: dict[str, list[Any]],
) -> None:
    s = provider.stand_in
    ids = _history(web, provider)
    event_count = len(s.events())

    deliveries = s.deliver_pending(times=3, order=order, seed=seed)
    assert len(deliveries) == 3 * event_count
    assert all(d.ok for d in deliveries), [d for d in deliveries if not d.ok]
    # The follow-up sync of the checkout changed the provider; its own events arrive last.
    assert all(d.ok for d in s.deliver_pending(times=2, order="reversed"))

    assert local_state(web.t) == provider.remote_state()
    assert provider.seats(local_row(web.t, ids["a"]).provider_subscription_id) == 5
    assert len(signals_seen["checkout_completed"]) == 1
    emitted = {e["id"] for e in s.events()}
    event_rows = [r["event_id"] for r in table_rows(web.t, "webhook_events")
                  if r["event_id"] in emitted]
    assert len(event_rows) == len(set(event_rows)) == len(s.events())


def test_stale_event_arriving_last_does_not_roll_back(web: Served, provider: World) -> None:
    s = provider.stand_in
    org = web.t.add_organization()
    sub = _dashboard(provider, web.t, org.id, 2)
    before = len(s.events_of("updated"))
    s.set_seats(sub, 8)
    first_update = s.events_of("updated")[before]["id"]
    s.set_seats(sub, 4)
    latest = [e["id"] for e in s.events() if e["id"] != first_update]

    for event_id in latest:
        assert all(d.ok for d in s.deliver(event_id))
    assert local_row(web.t, org.id).seats == 4
    assert all(d.ok for d in s.deliver(first_update))  # says 8, arrives last

    assert local_row(web.t, org.id).seats == 4
