"""Queued webhook processing: the request verifies and records the event and answers at once;
Celery workers re-read and store. Duplicated and reordered deliveries publish one task per
event, a failing task leaves its event recorded and unprocessed until a retry succeeds, and the
local subscriptions end equal to Stripe's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
import sqlalchemy as sa

from tests.apps import PRO_MONTHLY, SEAT_PRICE
from tests.behaviour.chaos.invariants import database_kind, write_summary
from tests.celery.conftest import Cluster
from tests.conftest import AppFactory
from tests.helpers import wait_for
from tests.web_helpers import WEBHOOK_SECRET, Served, local_state, serve, table_rows


@pytest.fixture
def web(make_celery_app: AppFactory, stripe: Any) -> Iterator[Served]:
    t = make_celery_app({
        "SEAT_BILLING_WEBHOOK_PROCESSING": "queued",
        "SEAT_BILLING_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SEAT_BILLING_SYNC_MODE": "deferred", "SEAT_BILLING_SYNC_DEBOUNCE_SECONDS": 0.2,
        "SEAT_BILLING_RETRY_MAX_SECONDS": 1.0,
    })
    for served in serve(t):
        stripe.add_webhook_endpoint(served.webhook_url, WEBHOOK_SECRET)
        yield served


def _stripe_state(stripe: Any) -> list[tuple[Any, ...]]:
    return sorted(
        (sub["id"], sub["metadata"].get("organization_id"), sub["status"],
         stripe.seats(sub["id"], PRO_MONTHLY), "pro-monthly", sub["cancel_at_period_end"])
        for sub in stripe.subscriptions()
    )


def _local(t: Any) -> list[tuple[Any, ...]]:
    with t.app.app_context():
        return local_state(t)


def _counters(t: Any) -> dict[str, int]:
    with t.app.app_context():
        from flask_seat_billing.state import get_state

        markers = get_state().dispatcher.markers
        assert markers is not None
        return markers.counters()


def _rows(t: Any, name: str) -> list[dict[str, Any]]:
    with t.app.app_context():
        return table_rows(t, name)


def test_duplicated_and_reordered_deliveries_are_processed_once_by_workers(
    web: Served, cluster: Cluster, stripe: Any, database_url: str
) -> None:
    t = web.t
    with t.app.app_context():
        subs = []
        for n in range(4):
            org = t.add_organization(f"org{n}").id
            t.add_members(org, 2)
            sub = str(stripe.create_subscription(
                items=[{"price": "price_base_m", "quantity": 1}, {"price": SEAT_PRICE,
                                                                   "quantity": 2}],
                metadata={"organization_id": str(org), "plan": "pro-monthly"})["id"])
            t.billing.link_subscription(org, sub)
            subs.append(sub)
    for sub in subs:  # changes made at Stripe: the app hears of them by webhook only
        stripe.set_seats(sub, 3, PRO_MONTHLY)
        stripe.pause_subscription(sub)
        stripe.resume_subscription(sub)
    stripe.set_seats(subs[0], 7, PRO_MONTHLY)
    stripe.cancel_subscription(subs[1], at_period_end=True)
    events = {e["id"] for e in stripe.events()}
    broker = redis.Redis.from_url(cluster.broker)
    queue_key = f"{cluster.tag}:{cluster.tag}"
    before = int(broker.llen(queue_key))

    deliveries = stripe.deliver_pending(times=2, order="shuffled", seed=15)
    assert len(deliveries) == 2 * len(events)
    assert all(d.status_code == 200 for d in deliveries)
    recorded = _rows(t, "webhook_queue")
    assert sorted(r["event_id"] for r in recorded) == sorted(events)  # once each
    assert int(broker.llen(queue_key)) - before == len(events)  # one task per event
    assert [r for r in _rows(t, "webhook_events") if r["event_id"] in events] == []
    assert _local(t) != _stripe_state(stripe)  # nothing processed by the request

    # The first re-reads fail: their events stay recorded, unprocessed, and are retried.
    stripe.faults.fail_next(1000, status=500, path_prefix="/v1/subscriptions/", method="GET")
    cluster.start_worker(beat=True)
    cluster.start_worker()
    assert wait_for(lambda: any(r["attempts"] >= 2 for r in _rows(t, "webhook_queue")),
                    timeout=30)
    failing = {r["event_id"] for r in _rows(t, "webhook_queue") if r["attempts"] > 0}
    processed_meanwhile = {r["event_id"] for r in _rows(t, "webhook_events")}
    assert failing and not failing & processed_meanwhile  # recorded, not processed
    failed_attempts = sum(r["attempts"] for r in _rows(t, "webhook_queue"))
    stripe.faults.clear()

    assert wait_for(lambda: not _rows(t, "webhook_queue"), timeout=60), cluster.log_of(0)[-3000:]
    processed = [r["event_id"] for r in _rows(t, "webhook_events") if r["event_id"] in events]
    assert sorted(processed) == sorted(events)
    assert _local(t) == _stripe_state(stripe)

    # Late redeliveries, in reverse: answered, and nothing is recorded or published again.
    published = _counters(t).get("webhook:enqueued", 0)
    late = [d for e in sorted(events, reverse=True) for d in stripe.deliver(e)]
    assert late and all(d.status_code == 200 for d in late)
    assert [r for r in _rows(t, "webhook_queue") if r["event_id"] in events] == []
    assert _counters(t).get("webhook:enqueued", 0) == published
    write_summary("celery-queued-webhooks", "stripe", {
        "database": database_kind(database_url), "events": len(events),
        "deliveries": len(deliveries) + len(late), "tasks_published_by_requests": len(events),
        "failed_attempts_before_recovery": failed_attempts,
        "tasks_run_per_worker": [cluster.tasks_run(0), cluster.tasks_run(1)],
    })


def test_a_recording_error_that_is_not_a_duplicate_answers_500_so_stripe_retries(
    web: Served, cluster: Cluster, stripe: Any
) -> None:
    """Only a unique-key clash on (provider, event id) is a duplicate: any other integrity
    error (here a queue table edited by hand, with a NOT NULL column the extension does not
    fill) must not be acknowledged, or the event would be lost."""
    t = web.t
    with t.app.app_context():
        org = t.add_organization().id
        t.add_members(org, 2)
        from flask_seat_billing.state import get_state

        table = get_state().tables.webhook_queue
        table.drop(t.db.engine)
        columns = [c._copy() for c in table.columns]
        sa.Table(table.name, sa.MetaData(), *columns,
                 sa.Column("note", sa.String(10), nullable=False)).create(t.db.engine)
    sub = str(stripe.create_subscription(
        items=[{"price": "price_base_m", "quantity": 1}, {"price": SEAT_PRICE, "quantity": 2}],
        metadata={"organization_id": str(org), "plan": "pro-monthly"})["id"])
    stripe.set_seats(sub, 3, PRO_MONTHLY)
    deliveries = stripe.deliver_pending()
    assert deliveries and all(d.status_code == 500 for d in deliveries), \
        [(d.status_code, d.error) for d in deliveries]
    assert _rows(t, "webhook_queue") == []
    assert _rows(t, "webhook_events") == []
