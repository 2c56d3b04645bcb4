"""What a sync and a burst of webhook events cost the provider, on every provider: one request
for a change when the local copy is current, a read only with a reason, one re-fetch for events
about one subscription that arrive together."""

from __future__ import annotations

import threading
from typing import Any

from flask_seat_billing.locks import organization_lock
from tests.apps import AppUnderTest
from tests.behaviour.conftest import World
from tests.helpers import ledger_rows, outbox_rows
from tests.web_helpers import Served, local_row, table_rows


def test_a_change_to_a_current_copy_sends_one_request_the_write(
    t: AppUnderTest, provider: World
) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = provider.subscribe(t, org.id)
    before = len(provider.stand_in.requests.all())

    t.add_members(org.id, 1)  # inline: synced on commit

    sent = provider.stand_in.requests.all()[before:]
    method, path = provider.dialect.seat_write
    assert [(r.method, r.path.startswith(path)) for r in sent] == [(method, True)], [
        (r.method, r.path) for r in sent]
    assert provider.seats(sub) == 3
    assert [(r["from_seats"], r["to_seats"]) for r in ledger_rows(t)] == [(2, 3)]
    assert local_row(t, org.id).seats == 3
    assert outbox_rows(t) == []


def test_a_write_refused_on_a_stale_copy_reads_and_decides_again(
    t: AppUnderTest, provider: World
) -> None:
    """Canceled at the provider, its webhook not delivered yet: the write is refused, the sync
    reads, finds the subscription ended, records it and owes nothing."""
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = provider.subscribe(t, org.id)
    provider.stand_in.set_status(sub, "canceled")
    assert local_row(t, org.id).status == "active"  # the copy is stale now

    t.add_members(org.id, 1)

    assert provider.seat_writes() == []
    assert local_row(t, org.id).status == "canceled"
    assert outbox_rows(t) == []
    assert ledger_rows(t) == []


def test_events_about_one_subscription_arriving_together_share_one_re_fetch(
    web: Served, provider: World
) -> None:
    """Three events arrive while the organization is locked (a sync is writing, say): the first
    to get the lock re-fetches, the two others find that read, which started after they
    arrived, and only record themselves. An event arriving after it reads again."""
    org = web.t.add_organization()
    web.t.add_members(org.id, 2)
    sub = provider.subscribe(web.t, org.id)
    provider.delivered()
    provider.stand_in.set_seats(sub, 5)  # a dashboard edit: the events' subject
    updated = provider.stand_in.event_types["updated"]
    bodies = {f"evt_together_{i}": provider.dialect.event_body(f"evt_together_{i}", updated, sub)
              for i in range(3)}
    reads_before = _reads(provider, sub)
    answers: list[Any] = []

    def deliver(event_id: str) -> None:
        answers.append(provider.post_event(web, bodies[event_id], event_id=event_id))

    with organization_lock(web.t.db.engine, str(org.id)):
        threads = [threading.Thread(target=deliver, args=(e,)) for e in bodies]
        for thread in threads:
            thread.start()
        _let_them_reach_the_lock(web, len(bodies))
    for thread in threads:
        thread.join(30)

    assert [a.status for a in answers] == [provider.dialect.webhook_ok] * 3
    assert _reads(provider, sub) - reads_before == 1
    recorded = {r["event_id"] for r in table_rows(web.t, "webhook_events")}
    assert set(bodies) <= recorded
    assert local_row(web.t, org.id).seats == 5

    late = provider.dialect.event_body("evt_later", updated, sub)
    assert provider.post_event(web, late, event_id="evt_later").status == (
        provider.dialect.webhook_ok)
    assert _reads(provider, sub) - reads_before == 2


def _reads(provider: World, sub: str) -> int:
    return sum(1 for r in provider.stand_in.requests.all()
               if r.method == "GET" and r.path.rstrip("/").endswith(sub))


def _let_them_reach_the_lock(web: Served, count: int) -> None:
    """Give the deliveries time to reach the lock (their dedupe lookups run before it)."""
    import time

    time.sleep(1.0 + 0.2 * count)
