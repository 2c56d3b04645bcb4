"""What Celery dispatch survives: a worker SIGKILLed inside the provider write, and a broker that
is down when the membership change commits. The periodic sweep (beat, embedded in a worker with
``-B``) finds the due outbox rows and publishes them again; nothing is lost or applied twice."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.apps import PRO_MONTHLY
from tests.behaviour.chaos.invariants import database_kind, key_reuse, ledger_doubles, write_summary
from tests.behaviour.dialects import STRIPE
from tests.celery.conftest import Cluster, PrivateRedis
from tests.conftest import AppFactory, subscribe
from tests.helpers import ledger_rows, outbox_rows, seat_writes, wait_for


def _pending(t: Any) -> list[dict[str, Any]]:
    with t.app.app_context():
        return outbox_rows(t)


def test_a_worker_killed_inside_the_write_and_another_finishing(
    make_celery_app: AppFactory, cluster: Cluster, stripe: Any, database_url: str
) -> None:
    t = make_celery_app({"SEAT_BILLING_SYNC_MODE": "inline",
                         "SEAT_BILLING_PROVIDER_TIMEOUT_SECONDS": 3})
    with t.app.app_context():
        org = t.add_organization().id
        t.add_members(org, 2)
        sub = subscribe(t, stripe, org)
    first = cluster.start_worker()
    assert wait_for(lambda: not _pending(t), timeout=30)

    # The write reaches Stripe, Stripe applies it, and the answer stalls: the worker is killed
    # while it waits, before it could record anything.
    stripe.faults.stall_next(1, seconds=5, apply=True, path_prefix="/v1/subscription_items/")
    with t.app.app_context():
        t.add_members(org, 3)
    assert wait_for(lambda: not stripe.faults.pending(), timeout=30), cluster.log_of(0)[-2000:]
    status = t.app.test_cli_runner().invoke(args=["seats", "status"])
    assert f"running tasks: 1\n  sync:{org} for" in status.output, status.output
    cluster.kill(first)
    assert stripe.seats(sub, PRO_MONTHLY) == 5  # Stripe did it; nobody recorded it
    assert [r["organization_key"] for r in _pending(t)] == [str(org)]

    cluster.start_worker(beat=True)  # its sweep finds the due row and publishes it again
    assert wait_for(lambda: not _pending(t), timeout=60), cluster.log_of(1)[-3000:]
    with t.app.app_context():
        rows = ledger_rows(t)
        doubles = ledger_doubles(t)
    # The stand-in logs the stalled request when its (late) answer is ready: wait for that.
    assert wait_for(lambda: any(r.fault == "stall" for r in stripe.requests.all()), timeout=15)
    applied = [r for r in stripe.requests.all()
               if r.path.startswith("/v1/subscription_items/") and r.changed]
    write_summary("celery-sigkill", "stripe", {
        "database": database_kind(database_url), "workers_killed": 1,
        "writes_applied_by_stripe": len(applied), "ledger_rows": len(rows),
        "tasks_run_by_second_worker": cluster.tasks_run(1),
    })
    assert len(applied) == 1  # read first: the landed write is seen, not sent again
    assert [(r["from_seats"], r["to_seats"], r["reason"]) for r in rows] == [(2, 5, "observed")]
    assert stripe.seats(sub, PRO_MONTHLY) == 5
    assert doubles == []
    assert key_reuse(stripe, STRIPE) == {}


def test_the_broker_down_at_commit_then_back(
    make_celery_app: AppFactory, cluster: Cluster, private_redis: PrivateRedis, stripe: Any,
    caplog: pytest.LogCaptureFixture, database_url: str
) -> None:
    cluster.broker = private_redis.url  # a Redis of the test's own, with a password
    t = make_celery_app({"SEAT_BILLING_SYNC_MODE": "deferred",
                         "SEAT_BILLING_SYNC_DEBOUNCE_SECONDS": 0.2})
    with t.app.app_context():
        org = t.add_organization().id
        t.add_members(org, 2)
        sub = subscribe(t, stripe, org)
    cluster.start_worker(beat=True)
    assert wait_for(lambda: not _pending(t), timeout=30)
    writes_before = len(seat_writes(stripe))

    private_redis.stop()
    with caplog.at_level(logging.ERROR, logger="flask_seat_billing.dispatch"), \
            t.app.app_context():
        t.add_members(org, 2)  # commits although nothing can be published
        assert t.billing.billable_seats(org) == 4
    errors = [r.getMessage() for r in caplog.records if r.name == "flask_seat_billing.dispatch"]
    assert errors and all("outbox keeps it" in m for m in errors)
    assert all(private_redis.password not in m for m in caplog.messages)
    assert [r["organization_key"] for r in _pending(t)] == [str(org)]
    wait_for(lambda: False, timeout=1.0)
    assert stripe.seats(sub, PRO_MONTHLY) == 2  # nobody could run it

    private_redis.start()  # empty: whatever was queued before is gone too
    # A Celery worker that held a message when the broker went away may exit (kombu cannot
    # restore it); in production its process supervisor starts it again, as here.
    restarted = cluster.workers[0].poll() is not None
    if restarted:
        cluster.start_worker(beat=True)
    assert wait_for(lambda: not _pending(t), timeout=60), cluster.log_of(-1)[-3000:]
    assert stripe.seats(sub, PRO_MONTHLY) == 4
    writes = len(seat_writes(stripe)) - writes_before
    write_summary("celery-broker-down", "stripe", {
        "database": database_kind(database_url), "commits_while_down": 1,
        "publish_errors_logged": len(errors), "seat_writes_after_restart": writes,
        "worker_restarted_by_supervisor": restarted,
    })
    assert writes == 1
    with t.app.app_context():
        assert ledger_doubles(t) == []
