"""The sweep under Celery dispatch: what it publishes and what it leaves alone.

A nudge after a sweep ran is heard (the sweep task gives up its marker); a markers' Redis that
cannot be reached still lets commits publish and tasks sync; a database without the webhook
queue table sweeps fine under inline webhooks; manual sync mode stays manual; a running sync is
not published again by each sweep.
"""

from __future__ import annotations

from typing import Any

from tests.apps import PRO_MONTHLY
from tests.celery.conftest import Cluster, free_port
from tests.conftest import AppFactory, subscribe
from tests.helpers import outbox_rows, wait_for


def _pending(t: Any) -> list[dict[str, Any]]:
    with t.app.app_context():
        return outbox_rows(t)


def _cli(t: Any, *args: str) -> Any:
    return t.app.test_cli_runner().invoke(args=["seats", *args])


def _dispatcher(t: Any) -> Any:
    from flask_seat_billing.state import get_state

    with t.app.app_context():
        return get_state().dispatcher


def test_a_nudge_after_the_sweep_ran_publishes_a_new_sweep(
    make_celery_app: AppFactory, cluster: Cluster
) -> None:
    t = make_celery_app({"SEAT_BILLING_SWEEP_SECONDS": 600})
    cluster.start_worker()
    dispatcher = _dispatcher(t)
    assert dispatcher.schedule("sweep", "all", 0.0) == "enqueued"  # what nudge() does
    assert wait_for(lambda: cluster.tasks_run(0) >= 1, timeout=30), cluster.log_of(0)[-2000:]
    assert wait_for(lambda: "queued tasks: 0\n" in _cli(t, "status").output, timeout=10), \
        _cli(t, "status").output
    # Heard at once, not ~70 s later when a stale marker would have expired.
    assert dispatcher.schedule("sweep", "all", 0.0) == "enqueued"
    assert wait_for(lambda: cluster.tasks_run(0) >= 2, timeout=30), cluster.log_of(0)[-2000:]


def test_an_unreachable_markers_redis_still_publishes_and_syncs(
    make_celery_app: AppFactory, cluster: Cluster, stripe: Any
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    t = make_celery_app({"SEAT_BILLING_SYNC_MODE": "inline",
                         "SEAT_BILLING_CELERY_REDIS_URL": nowhere})
    with t.app.app_context():
        org = t.add_organization().id
        t.add_members(org, 2)
        sub = subscribe(t, stripe, org)
    cluster.start_worker()
    assert wait_for(lambda: not _pending(t), timeout=30), cluster.log_of(0)[-3000:]
    with t.app.app_context():
        t.add_members(org, 3)
    assert wait_for(lambda: stripe.seats(sub, PRO_MONTHLY) == 5 and not _pending(t),
                    timeout=30), cluster.log_of(0)[-3000:]
    assert _dispatcher(t).claim_failures >= 2  # counted: each commit found Redis away
    assert "redis unreachable" in _cli(t, "status").output


def test_the_sweep_with_inline_webhooks_needs_no_webhook_queue_table(
    make_celery_app: AppFactory, cluster: Cluster, stripe: Any
) -> None:
    t = make_celery_app({"SEAT_BILLING_SYNC_MODE": "inline"})
    with t.app.app_context():
        from flask_seat_billing.state import get_state

        get_state().tables.webhook_queue.drop(t.db.engine)  # never migrated
        org = t.add_organization().id
        t.add_members(org, 2)
        sub = subscribe(t, stripe, org)
        t.add_members(org, 1)
    swept = _cli(t, "sweep")
    assert swept.exit_code == 0, swept.output
    assert swept.output.endswith("webhook events\n")
    status = _cli(t, "status")
    assert status.exit_code == 0 and "queued tasks:" in status.output, status.output
    cluster.start_worker()
    assert wait_for(lambda: stripe.seats(sub, PRO_MONTHLY) == 3 and not _pending(t),
                    timeout=30), cluster.log_of(0)[-3000:]


def test_manual_sync_mode_is_not_swept(
    make_celery_app: AppFactory, cluster: Cluster, stripe: Any
) -> None:
    t = make_celery_app({"SEAT_BILLING_SYNC_MODE": "manual"})
    with t.app.app_context():
        org = t.add_organization().id
        t.add_members(org, 2)
        sub = subscribe(t, stripe, org)
        t.add_members(org, 2)
    cluster.start_worker(beat=True)  # sweeps every second
    assert _cli(t, "sweep").output == "published 0 syncs, 0 webhook events\n"
    wait_for(lambda: False, timeout=3.0)
    assert stripe.seats(sub, PRO_MONTHLY) == 2  # waits for sync-pending
    assert [r["organization_key"] for r in _pending(t)] == [str(org)]
    assert _cli(t, "sync-pending").exit_code == 0
    assert stripe.seats(sub, PRO_MONTHLY) == 4
    assert _pending(t) == []


def test_a_running_sync_is_not_published_again_by_the_sweep(
    make_celery_app: AppFactory, cluster: Cluster, stripe: Any
) -> None:
    t = make_celery_app({"SEAT_BILLING_SYNC_MODE": "inline",
                         "SEAT_BILLING_PROVIDER_TIMEOUT_SECONDS": 10})
    with t.app.app_context():
        org = t.add_organization().id
        t.add_members(org, 2)
        sub = subscribe(t, stripe, org)
    cluster.start_worker()
    assert wait_for(lambda: not _pending(t), timeout=30)
    stripe.faults.stall_next(1, seconds=4, apply=True, path_prefix="/v1/subscription_items/")
    with t.app.app_context():
        t.add_members(org, 1)
    assert wait_for(lambda: not stripe.faults.pending(), timeout=30), cluster.log_of(0)[-2000:]
    assert f"running tasks: 1\n  sync:{org} for" in _cli(t, "status").output
    assert _cli(t, "sweep").output == "published 0 syncs, 0 webhook events\n"
    assert wait_for(lambda: not _pending(t), timeout=30), cluster.log_of(0)[-2000:]
    assert stripe.seats(sub, PRO_MONTHLY) == 3
