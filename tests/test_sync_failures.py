"""Provider outages, rate limits and crashes lose no seat change."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from flask_seat_billing import signals
from tests.apps import SEAT_PRICE, AppUnderTest
from tests.conftest import AppFactory, subscribe
from tests.helpers import ledger_rows, outbox_rows, seat_writes, wait_for

ROOT = Path(__file__).resolve().parent.parent


def test_provider_500s_then_recovery(t: AppUnderTest, stripe: Any) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, stripe, org.id)
    failures: list[dict[str, Any]] = []
    signals.seat_sync_failed.connect(lambda app, **kw: failures.append(kw), weak=False)
    stripe.faults.fail_next(3, status=500, path_prefix="/v1/subscriptions/")

    t.add_members(org.id, 1)  # the membership change itself succeeds

    assert t.Membership.query.filter_by(organization_id=org.id).count() == 3
    [row] = outbox_rows(t)
    assert row["attempts"] >= 1 and row["last_error"]
    assert failures and failures[0]["permanent"] is False
    assert wait_for(lambda: stripe.item_quantity(sub, SEAT_PRICE) == 3, timeout=15)
    assert wait_for(lambda: outbox_rows(t) == [])
    assert len(seat_writes(stripe)) == 1
    signals.seat_sync_failed.receivers.clear()


def test_rate_limit_honours_retry_after(t: AppUnderTest, stripe: Any) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, stripe, org.id)
    stripe.faults.rate_limit_next(1, retry_after=2, path_prefix="/v1/subscription")

    t.add_members(org.id, 1)

    [row] = outbox_rows(t)
    assert (row["next_attempt_at"] - row["updated_at"]).total_seconds() >= 1.9
    assert "rate limit" in row["last_error"].lower()
    assert stripe.item_quantity(sub, SEAT_PRICE) == 2
    assert wait_for(lambda: stripe.item_quantity(sub, SEAT_PRICE) == 3, timeout=15)


def test_permanent_refusal_is_recorded_not_retried(t: AppUnderTest, stripe: Any) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    subscribe(t, stripe, org.id)
    t.billing.stop_worker()
    stripe.faults.fail_next(1, status=400, path_prefix="/v1/subscription_items")

    t.add_members(org.id, 1)

    [row] = outbox_rows(t)
    assert row["status"] == "failed"
    assert row["target_seats"] == 3
    assert t.billing.sync_pending() == []  # parked: not due again until membership changes
    t.add_members(org.id, 1)  # a new change retries
    assert outbox_rows(t) == []


def test_crash_between_commit_and_sync_is_drained(
    make_app: AppFactory, stripe: Any, database_url: str
) -> None:
    t = make_app()
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 2)
        sub = subscribe(t, stripe, org.id)
        org_id = org.id

    # The child registers its own after_commit listener before the extension's, so it runs
    # first: the process dies right after the commit, before any sync could start.
    child = textwrap.dedent(f"""
        import os
        from sqlalchemy import event
        from sqlalchemy.orm import Session
        event.listen(Session, "after_commit", lambda s: os._exit(17))
        from tests.apps import attach_app
        t = attach_app({database_url!r}, {stripe.url!r})
        with t.app.app_context():
            t.add_members({org_id!r}, 2)
    """)
    done = subprocess.run([sys.executable, "-c", child], cwd=ROOT, env={**os.environ},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 17, done.stderr

    with t.app.app_context():
        assert t.Membership.query.filter_by(organization_id=org_id).count() == 4
        assert [r["organization_key"] for r in outbox_rows(t)] == [str(org_id)]
        assert stripe.item_quantity(sub, SEAT_PRICE) == 2

        results = t.billing.sync_pending()

        assert [r.action for r in results] == ["updated"]
        assert stripe.item_quantity(sub, SEAT_PRICE) == 4
        assert outbox_rows(t) == []
        assert [(c["from_seats"], c["to_seats"]) for c in ledger_rows(t)] == [(2, 4)]
