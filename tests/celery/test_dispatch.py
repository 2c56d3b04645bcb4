"""Celery dispatch of syncs: after the commit only, one task per organization per window, and
convergence of many organizations under bursts with two worker processes."""

from __future__ import annotations

import random
from typing import Any

import redis

from tests.apps import PRO_MONTHLY
from tests.behaviour.chaos.invariants import (
    database_kind,
    key_reuse,
    ledger_doubles,
    write_summary,
)
from tests.behaviour.dialects import STRIPE
from tests.celery.conftest import Cluster
from tests.conftest import AppFactory, subscribe
from tests.helpers import outbox_rows, seat_writes, wait_for


def _messages(cluster: Cluster) -> int:
    """Messages waiting in the test's queue on the broker (no worker consumes yet)."""
    client = redis.Redis.from_url(cluster.broker)
    return int(client.llen(f"{cluster.tag}:{cluster.tag}"))


def _pending(t: Any) -> list[dict[str, Any]]:
    with t.app.app_context():
        return outbox_rows(t)


def _counters(t: Any) -> dict[str, int]:
    with t.app.app_context():
        from flask_seat_billing.state import get_state

        markers = get_state().dispatcher.markers
        assert markers is not None
        return markers.counters()



def _mismatches(t: Any, stripe: Any, subs: dict[Any, str]) -> dict[Any, tuple[int, int]]:
    """Organizations whose Stripe seat quantity differs from their billable seats."""
    with t.app.app_context():
        pairs = {org: (stripe.seats(sub, PRO_MONTHLY), t.billing.billable_seats(org))
                 for org, sub in subs.items()}
    return {org: pair for org, pair in pairs.items() if pair[0] != pair[1]}


def test_a_rolled_back_transaction_enqueues_nothing(
    make_celery_app: AppFactory, cluster: Cluster, stripe: Any
) -> None:
    t = make_celery_app({"SEAT_BILLING_SYNC_MODE": "deferred",
                         "SEAT_BILLING_SYNC_DEBOUNCE_SECONDS": 0.2})
    with t.app.app_context():
        org = t.add_organization().id
        t.add_members(org, 2)
        sub = subscribe(t, stripe, org)
    published = _messages(cluster)  # the setup's own commits
    claims = _counters(t)
    with t.app.app_context():
        t.add_members(org, 3, commit=False)
        t.db.session.flush()  # the outbox row is written, inside the transaction
        t.db.session.rollback()
        t.add_members(org, 1, commit=False)
        t.db.session.rollback()  # never flushed
        nested = t.db.session.begin_nested()
        t.add_members(org, 1, commit=False)
        t.db.session.flush()
        nested.rollback()  # a savepoint rolled back inside a transaction that commits
        t.db.session.commit()
    assert _messages(cluster) == published
    assert _counters(t) == claims  # not even asked: no task, no coalesced claim
    with t.app.app_context():
        assert [r for r in outbox_rows(t) if r["generation"] > 1] == []

    with t.app.app_context():
        other = t.add_organization("Other").id
        t.add_members(other, 1)  # committed, a new organization: exactly one more task
    assert _messages(cluster) == published + 1
    with t.app.app_context():
        t.add_members(org, 1)  # committed inside the window of the queued task: coalesced
    assert _messages(cluster) == published + 1
    assert _counters(t)["coalesced"] == claims["coalesced"] + 1
    cluster.start_worker()
    assert wait_for(lambda: stripe.seats(sub, PRO_MONTHLY) == 3 and
                    not _pending(t), timeout=30)
    with t.app.app_context():
        assert t.billing.billable_seats(org) == 3


def test_bursts_over_many_organizations_converge_with_two_workers(
    make_celery_app: AppFactory, cluster: Cluster, stripe: Any, database_url: str
) -> None:
    rng = random.Random(15)
    t = make_celery_app({"SEAT_BILLING_SYNC_MODE": "deferred",
                         "SEAT_BILLING_SYNC_DEBOUNCE_SECONDS": 0.3})
    with t.app.app_context():
        orgs = [t.add_organization(f"org{i}").id for i in range(12)]
        subs = {}
        for org in orgs:
            t.add_members(org, rng.randint(1, 3))
            subs[org] = subscribe(t, stripe, org)
    cluster.start_worker()
    cluster.start_worker()
    wait_for(lambda: not _pending(t), timeout=30)
    writes_before = len(seat_writes(stripe))
    counters_before = _counters(t)

    commits = 0
    for _ in range(4):  # four bursts, each a few commits per organization
        with t.app.app_context():
            for org in rng.sample(orgs, len(orgs)):
                for _ in range(rng.randint(1, 4)):
                    members = t.Membership.query.filter_by(organization_id=org).all()
                    if len(members) > 1 and rng.random() < 0.4:
                        t.db.session.delete(rng.choice(members))
                        t.db.session.commit()
                    else:
                        t.add_members(org, rng.randint(1, 2))
                    commits += 1
        wait_for(lambda: False, timeout=rng.uniform(0.1, 0.6))

    assert wait_for(lambda: not _pending(t) and not _mismatches(t, stripe, subs), timeout=90)
    counters = {k: v - counters_before.get(k, 0) for k, v in _counters(t).items()}
    writes = len(seat_writes(stripe)) - writes_before
    per_worker = [cluster.tasks_run(0), cluster.tasks_run(1)]
    with t.app.app_context():
        doubles = ledger_doubles(t)
    write_summary("celery-bursts", "stripe", {
        "database": database_kind(database_url), "organizations": len(orgs),
        "commits": commits, "tasks_published": counters["enqueued"],
        "coalesced": counters["coalesced"], "noop_tasks": counters["noop"],
        "early_tasks": counters["early"], "seat_writes": writes,
        "tasks_run_per_worker": per_worker, "ledger_double_entries": len(doubles),
    })
    assert doubles == []
    assert key_reuse(stripe, STRIPE) == {}
    assert counters["coalesced"] > 0  # a burst inside one window is not one task per commit
    assert counters["enqueued"] < commits
    assert writes <= counters["enqueued"]
    assert all(n > 0 for n in per_worker), per_worker


def test_a_task_that_runs_before_its_row_is_due_waits_for_it(
    make_celery_app: AppFactory, cluster: Cluster, stripe: Any
) -> None:
    """A sync task published for "now" (a stray duplicate, a sweep of another host's clock)
    while the row waits out its 3 s window publishes itself again for the due time: the window
    still folds the burst into one write."""
    t = make_celery_app({"SEAT_BILLING_SYNC_MODE": "deferred",
                         "SEAT_BILLING_SYNC_DEBOUNCE_SECONDS": 3})
    with t.app.app_context():
        org = t.add_organization().id
        t.add_members(org, 1)
        sub = subscribe(t, stripe, org)
    cluster.start_worker()
    assert wait_for(lambda: not _pending(t), timeout=30)
    before = _counters(t)
    writes = len(seat_writes(stripe))
    with t.app.app_context():
        t.add_members(org, 1)
        from flask_seat_billing.state import get_state

        assert get_state().dispatcher.schedule("sync", str(org), 0.0) == "enqueued"  # early
        t.add_members(org, 1)
    assert wait_for(lambda: _counters(t)["early"] > before["early"], timeout=10)
    assert len(seat_writes(stripe)) == writes  # not before the window ends
    assert wait_for(lambda: not _pending(t), timeout=30)
    assert len(seat_writes(stripe)) == writes + 1
    assert stripe.seats(sub, PRO_MONTHLY) == 3
