"""Inline, deferred and manual modes: when the provider hears about a change."""

from __future__ import annotations

import time
from typing import Any

from tests.apps import PRO_MONTHLY
from tests.conftest import AppFactory, subscribe
from tests.helpers import outbox_rows, seat_writes, wait_for


def test_deferred_mode_coalesces_a_burst(make_app: AppFactory, stripe: Any) -> None:
    t = make_app({"SEAT_BILLING_SYNC_MODE": "deferred", "SEAT_BILLING_SYNC_DEBOUNCE_SECONDS": 1.0})
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 1)
        sub = subscribe(t, stripe, org.id)
        before = len(stripe.requests)

        for _ in range(30):  # thirty transactions, one member each
            t.add_members(org.id, 1)
        requests_on_request_path = len(stripe.requests) - before

        assert requests_on_request_path == 0
        assert wait_for(lambda: stripe.seats(sub, PRO_MONTHLY) == 31, timeout=15)
        assert wait_for(lambda: outbox_rows(t) == [])
        assert 1 <= len(seat_writes(stripe)) <= 3


def test_manual_mode_waits_for_an_explicit_call(make_app: AppFactory, stripe: Any) -> None:
    t = make_app({"SEAT_BILLING_SYNC_MODE": "manual"})
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 1)
        sub = subscribe(t, stripe, org.id)

        t.add_members(org.id, 2)
        time.sleep(0.3)
        assert stripe.seats(sub, PRO_MONTHLY) == 1
        assert len(outbox_rows(t)) == 1

        [result] = t.billing.sync_pending()

        assert (result.action, result.from_seats, result.to_seats) == ("updated", 1, 3)
        assert stripe.seats(sub, PRO_MONTHLY) == 3
        assert outbox_rows(t) == []


def test_sync_result_explains_itself(make_app: AppFactory, stripe: Any) -> None:
    t = make_app({"SEAT_BILLING_SYNC_MODE": "manual"})
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 2)
        subscribe(t, stripe, org.id, seats=5)

        result = t.billing.sync_organization(org.id)

        assert result.sent and result.ok
        assert (result.billable, result.from_seats, result.to_seats) == (2, 5, 2)
        assert t.billing.seat_changes(org.id)[0].to_seats == 2
