"""A webhook stream as hostile as Stripe's can be: duplicated, shuffled, forged and stale.

Each event is delivered 1-3 times in a shuffled stream, about one delivery in ten carries a bad
signature and some carry a timestamp outside the tolerance; a few events are only ever delivered
with a bad signature. Local rows must end equal to Stripe's, and the rejected deliveries must
have written nothing: the processed-event table holds exactly the event ids that had a valid
delivery, once each.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests import web_helpers
from tests.apps import SEAT_PRICE
from tests.chaos.conftest import database_kind, write_summary
from tests.conftest import AppFactory
from tests.web_helpers import Served, local_state, table_rows


@pytest.fixture
def web(make_app: AppFactory, stripe: Any) -> Iterator[Served]:
    yield from web_helpers.serve_app(make_app, stripe)


def _stripe_state(stripe: Any) -> list[tuple[Any, ...]]:
    return sorted(
        (sub["id"], sub["metadata"].get("organization_id"), sub["status"],
         stripe.item_quantity(sub["id"], SEAT_PRICE), "pro-monthly", sub["cancel_at_period_end"])
        for sub in stripe.subscriptions()
    )


def _busy_account(web: Served, stripe: Any, rng: random.Random) -> int:
    """Dashboard edits and our own seat writes on six organizations; returns operations done."""
    t = web.t
    operations = 0
    for n in range(6):
        org = t.add_organization(f"org{n}")
        t.add_members(org.id, rng.randint(1, 3))
        sub = str(stripe.create_subscription(
            items=[{"price": "price_base_m", "quantity": 1},
                   {"price": SEAT_PRICE, "quantity": t.billing.billable_seats(org.id)}],
            metadata={"organization_id": str(org.id), "plan": "pro-monthly"},
        )["id"])
        t.billing.link_subscription(org.id, sub)
        for _ in range(rng.randint(3, 6)):
            action = rng.choice(["members", "members", "dashboard", "pause", "cancel_later"])
            if action == "members":
                t.add_members(org.id, rng.randint(1, 2))  # inline sync: our write, our event
            elif action == "dashboard":
                stripe.set_item_quantity(sub, SEAT_PRICE, rng.randint(1, 9))
            elif action == "pause":
                stripe.pause_subscription(sub)
                stripe.resume_subscription(sub)
            else:
                stripe.cancel_subscription(sub, at_period_end=True)
            operations += 1
        if n == 5:
            stripe.cancel_subscription(sub)
            operations += 1
    return operations


def test_duplicated_shuffled_forged_and_stale_deliveries(
    web: Served, stripe: Any, database_url: str
) -> None:
    rng = random.Random(2026_08)
    operations = _busy_account(web, stripe, rng)
    events = [e["id"] for e in stripe.events()]
    rejected_only = set(rng.sample(events, max(1, len(events) // 10)))
    plan: list[tuple[str, str, int]] = []  # (event, signature mode, timestamp offset)
    for event_id in events:
        if event_id not in rejected_only:
            plan += [(event_id, "valid", 0)] * rng.randint(1, 3)
        plan.append((event_id, "bad", 0))
        if rng.random() < 0.3:
            plan.append((event_id, "valid", -1000))  # a replay of a capture, too old
    plan = [p for p in plan if p[1] != "bad" or rng.random() < 0.35 or p[0] in rejected_only]
    rng.shuffle(plan)

    statuses: Counter[str] = Counter()
    for event_id, signature, offset in plan:
        [delivery] = stripe.deliver(event_id, signature=signature, timestamp_offset=offset)
        good = signature == "valid" and offset == 0
        kind = "valid" if good else ("stale" if offset else "bad_signature")
        statuses[f"{kind}:{delivery.status_code}"] += 1
        assert delivery.ok == good, (kind, delivery)
    # Follow-up writes (none expected in accept mode) would raise fresh events: deliver those,
    # and only those (``deliver_pending`` would also redeliver the forged-only events validly).
    later = [e["id"] for e in stripe.events() if e["id"] not in set(events)]
    assert all(d.ok for e in later for d in stripe.deliver(e))

    recorded = [r["event_id"] for r in table_rows(web.t, "webhook_events")
                if r["event_id"].startswith("evt_")]
    valid_ids = {e for e, s, o in plan if s == "valid" and o == 0}
    valid_ids |= set(later)
    local, remote = local_state(web.t), _stripe_state(stripe)
    write_summary("webhook-storm", {
        "database": database_kind(database_url), "account_operations": operations,
        "events": len(stripe.events()), "deliveries": len(plan),
        "deliveries_by_kind_and_status": dict(statuses),
        "events_only_delivered_forged": len(rejected_only),
        "event_rows_recorded": len(recorded), "distinct_valid_event_ids": len(valid_ids),
        "final_mismatches": sum(1 for a, b in zip(local, remote, strict=False) if a != b)
        + abs(len(local) - len(remote)),
    })
    assert sorted(recorded) == sorted(valid_ids)  # once each, nothing from a rejected delivery
    assert not (set(recorded) & rejected_only)
    assert local == remote
