"""A webhook stream as hostile as a provider's can be: duplicated, shuffled, forged and stale.

Each event is delivered 1-3 times in a shuffled stream, about one delivery in ten carries a bad
signature and some carry a timestamp outside the tolerance; a few events are only ever delivered
with a bad signature. Local rows must end equal to Stripe's, and the rejected deliveries must
have written nothing: the processed-event table holds exactly the event ids that had a valid
delivery, once each. Run on every provider, each signing as it does (Stripe's
``Stripe-Signature``, Polar's Standard Webhooks headers).
"""

from __future__ import annotations

import random
from collections import Counter

from tests.behaviour.chaos.invariants import database_kind, write_summary
from tests.behaviour.conftest import World
from tests.web_helpers import Served, local_state, table_rows


def _busy_account(web: Served, provider: World, rng: random.Random) -> int:
    """Dashboard edits and our own seat writes on six organizations; returns operations done."""
    t = web.t
    s = provider.stand_in
    operations = 0
    for n in range(6):
        org = t.add_organization(f"org{n}")
        t.add_members(org.id, rng.randint(1, 3))
        sub = provider.subscribe(t, org.id)
        for _ in range(rng.randint(3, 6)):
            action = rng.choice(["members", "members", "dashboard", "pause", "cancel_later"])
            if action == "members":
                t.add_members(org.id, rng.randint(1, 2))  # inline sync: our write, our event
            elif action == "dashboard":
                s.set_seats(sub, rng.randint(1, 9))
            elif action == "pause":
                s.pause_subscription(sub)
                s.resume_subscription(sub)
            elif s.cancel_at_period_end(sub):
                continue  # Polar refuses a second cancellation (403); Stripe changes nothing
            else:
                s.cancel_subscription(sub, at_period_end=True)
            operations += 1
        if n == 5:
            s.cancel_subscription(sub)
            operations += 1
    return operations


def test_duplicated_shuffled_forged_and_stale_deliveries(
    web: Served, provider: World, database_url: str
) -> None:
    stand_in = provider.stand_in
    rng = random.Random(2026_08)
    operations = _busy_account(web, provider, rng)
    events = [e["id"] for e in stand_in.events()]
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
        [delivery] = stand_in.deliver(event_id, signature=signature, timestamp_offset=offset)
        good = signature == "valid" and offset == 0
        kind = "valid" if good else ("stale" if offset else "bad_signature")
        statuses[f"{kind}:{delivery.status_code}"] += 1
        assert delivery.ok == good, (kind, delivery)
    # Follow-up writes (none expected in accept mode) would raise fresh events: deliver those,
    # and only those (``deliver_pending`` would also redeliver the forged-only events validly).
    later = [e["id"] for e in stand_in.events() if e["id"] not in set(events)]
    assert all(d.ok for e in later for d in stand_in.deliver(e))

    emitted = {e["id"] for e in stand_in.events()}
    recorded = [r["event_id"] for r in table_rows(web.t, "webhook_events")
                if r["event_id"] in emitted]
    valid_ids = {e for e, s, o in plan if s == "valid" and o == 0}
    valid_ids |= set(later)
    local, remote = local_state(web.t), provider.remote_state()
    write_summary("webhook-storm", provider, {
        "database": database_kind(database_url), "account_operations": operations,
        "events": len(stand_in.events()), "deliveries": len(plan),
        "deliveries_by_kind_and_status": dict(statuses),
        "events_only_delivered_forged": len(rejected_only),
        "event_rows_recorded": len(recorded), "distinct_valid_event_ids": len(valid_ids),
        "final_mismatches": sum(1 for a, b in zip(local, remote, strict=False) if a != b)
        + abs(len(local) - len(remote)),
    })
    assert sorted(recorded) == sorted(valid_ids)  # once each, nothing from a rejected delivery
    assert not (set(recorded) & rejected_only)
    assert local == remote
