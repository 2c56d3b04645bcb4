"""Provider outages, rate limits, lost answers, refusals and crashes lose no seat change, on every
provider."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flask_seat_billing import signals
from tests.apps import AppUnderTest
from tests.behaviour.conftest import AppFactory, World
from tests.helpers import ledger_rows, outbox_rows, wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sync_failures() -> Iterator[list[dict[str, Any]]]:
    """What ``seat_sync_failed`` receivers are told, for the test's duration."""
    failures: list[dict[str, Any]] = []

    def failed(app: Any, **kw: Any) -> None:
        failures.append(kw)

    signals.seat_sync_failed.connect(failed)
    yield failures
    signals.seat_sync_failed.disconnect(failed)


def test_provider_500s_then_recovery(
    t: AppUnderTest, provider: World, sync_failures: list[dict[str, Any]]
) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = provider.subscribe(t, org.id)
    path = provider.dialect.seat_write[1]  # the one request a sync sends
    provider.stand_in.faults.fail_next(3, status=500, path_prefix=path)

    t.add_members(org.id, 1)  # the membership change itself succeeds

    assert t.Membership.query.filter_by(organization_id=org.id).count() == 3
    [row] = outbox_rows(t)
    assert row["attempts"] >= 1 and row["last_error"]
    assert sync_failures and sync_failures[0]["permanent"] is False
    assert wait_for(lambda: provider.seats(sub) == 3, timeout=15)
    assert wait_for(lambda: outbox_rows(t) == [])
    assert len(provider.seat_writes()) == 1


@pytest.mark.parametrize("status", [500, 400])
def test_a_write_answered_with_an_error_is_sent_again_as_a_new_write(
    t: AppUnderTest, provider: World, status: int
) -> None:
    """Stripe stores the answer of a request whose endpoint began executing, errors included,
    and replays it to every later request with that idempotency key: the write after an error
    answer must be a new one, or every retry gets the stored error back. (Polar takes no keys;
    the same recovery holds there.)"""
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = provider.subscribe(t, org.id)
    provider.fail_seat_writes(1, status=status)

    t.add_members(org.id, 1)
    [row] = outbox_rows(t)
    assert row["attempts"] == 1 and row["last_error"]

    t.billing.sync_organization(org.id)
    assert provider.seats(sub) == 3
    assert outbox_rows(t) == []
    assert len(provider.seat_writes()) == 1
    assert [(r["from_seats"], r["to_seats"]) for r in ledger_rows(t)][-1:] == [(2, 3)]


def test_network_error_is_retried(t: AppUnderTest, provider: World) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = provider.subscribe(t, org.id)
    provider.stand_in.faults.drop_next(1)

    t.add_members(org.id, 1)

    assert wait_for(lambda: provider.seats(sub) == 3, timeout=15)
    assert wait_for(lambda: outbox_rows(t) == [])


def test_rate_limit_honours_retry_after(t: AppUnderTest, provider: World) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = provider.subscribe(t, org.id)
    path = provider.dialect.seat_write[1]  # the one request a sync sends
    provider.stand_in.faults.rate_limit_next(1, retry_after=2, path_prefix=path)

    t.add_members(org.id, 1)

    [row] = outbox_rows(t)
    assert (row["next_attempt_at"] - row["updated_at"]).total_seconds() >= 1.9
    assert "rate limit" in row["last_error"].lower()
    assert provider.seats(sub) == 2
    assert wait_for(lambda: provider.seats(sub) == 3, timeout=15)


def test_permanent_refusal_is_recorded_not_retried(
    t: AppUnderTest, provider: World, sync_failures: list[dict[str, Any]]
) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = provider.subscribe(t, org.id)
    t.billing.stop_worker()
    provider.fail_seat_writes(1, status=400)

    t.add_members(org.id, 1)

    [row] = outbox_rows(t)
    assert row["status"] == "failed"
    assert row["target_seats"] == 3
    assert row["last_error"].startswith(provider.dialect.refused)
    [failure] = sync_failures
    assert failure["permanent"] is True and failure["attempts"] == 1
    assert failure["error"] == row["last_error"]
    assert provider.seats(sub) == 2
    assert t.billing.sync_pending() == []  # parked: not due again until membership changes
    t.add_members(org.id, 1)  # a new change retries
    assert outbox_rows(t) == []
    assert provider.seats(sub) == 4


def test_retry_after_a_lost_answer_does_not_write_twice(
    make_app: AppFactory, provider: World
) -> None:
    """The write applied but its answer was lost: the retry never applies the change again."""
    t = make_app({"SEAT_BILLING_PROVIDER_TIMEOUT_SECONDS": 0.5})
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 2)
        sub = provider.subscribe(t, org.id)
        t.billing.stop_worker()
        method, path = provider.dialect.seat_write
        provider.stand_in.faults.stall_next(seconds=1.0, apply=True, method=method)

        t.add_members(org.id, 1)

        assert provider.seats(sub) == 3  # applied although the app saw a timeout
        assert wait_for(lambda: not outbox_rows(t) or bool(t.billing.sync_pending()))
        assert wait_for(lambda: outbox_rows(t) == [])
        def seat_writes() -> list[Any]:
            return [r for r in provider.stand_in.requests
                    if r.method == method and r.path.startswith(path)]

        # The stalled request is logged when its answer finally leaves, possibly after the retry.
        assert wait_for(lambda: any(r.fault == "stall" for r in seat_writes()))
        applied = [r for r in seat_writes() if r.changed and not r.replayed]
        assert len(applied) == 1  # the change was made once
        # A retry either read 3 seats and sent nothing, or (Stripe) resent the write with the
        # same key and got the stored answer back: never a second write of its own.
        retries = [r for r in seat_writes() if r.fault is None]
        assert all(r.replayed and r.idempotency_key == applied[0].idempotency_key
                   for r in retries)
        assert [(c["from_seats"], c["to_seats"]) for c in ledger_rows(t)][-1:] == [(2, 3)]
        local = t.billing.subscription_for(org.id)
        assert local is not None and local.seats == 3


def test_crash_between_commit_and_sync_is_drained(
    make_app: AppFactory, provider: World, database_url: str
) -> None:
    t = make_app()
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 2)
        sub = provider.subscribe(t, org.id)
        org_id = org.id

    # The child registers its own after_commit listener before the extension's, so it runs
    # first: the process dies right after the commit, before any sync could start.
    child = textwrap.dedent("""
        import os
        from sqlalchemy import event
        from sqlalchemy.orm import Session
        event.listen(Session, "after_commit", lambda s: os._exit(17))
    """) + provider.attach_source(database_url) + textwrap.dedent(f"""
        with t.app.app_context():
            t.add_members({org_id!r}, 2)
    """)
    done = subprocess.run([sys.executable, "-c", child], cwd=ROOT, env={**os.environ},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 17, done.stderr

    with t.app.app_context():
        assert t.Membership.query.filter_by(organization_id=org_id).count() == 4
        assert [r["organization_key"] for r in outbox_rows(t)] == [str(org_id)]
        assert provider.seats(sub) == 2

        results = t.billing.sync_pending()

        assert [r.action for r in results] == ["updated"]
        assert provider.seats(sub) == 4
        assert outbox_rows(t) == []
        assert [(c["from_seats"], c["to_seats"]) for c in ledger_rows(t)] == [(2, 4)]


def _subscribed(t: AppUnderTest, provider: World, n: int) -> tuple[list[Any], list[str]]:
    """``n`` organizations of two members, each subscribed for 2 seats: (ids, subscriptions)."""
    orgs, subs = [], []
    for _ in range(n):
        org = t.add_organization()
        t.add_members(org.id, 2)
        orgs.append(org.id)
        subs.append(provider.subscribe(t, org.id))
    return orgs, subs


def test_an_outage_stops_the_requests_after_failures_in_a_row_and_loses_nothing(
    make_app: AppFactory, provider: World, sync_failures: list[dict[str, Any]]
) -> None:
    """Three failures in a row open the circuit: later changes wait in the outbox without a
    request each, and everything lands once the provider answers again."""
    t = make_app({"SEAT_BILLING_CIRCUIT_BREAKER_FAILURES": 3,
                  "SEAT_BILLING_RETRY_BASE_SECONDS": 4.0})  # the circuit stays open 2-4 s
    with t.app.app_context():
        orgs, subs = _subscribed(t, provider, 6)
        provider.stand_in.faults.fail_next(10**6, status=503)  # the provider is down
        before = len(provider.stand_in.requests.all())

        for org_id in orgs:
            t.add_members(org_id, 1)
        explicit = t.billing.sync_organization(orgs[-1])

        # Three failures (the background worker may retry one of the first rows meanwhile,
        # which counts too), then nothing was sent.
        sent = len(provider.stand_in.requests.all()) - before
        assert 3 <= sent <= 4
        unavailable = "provider unavailable: "
        held_back = [f for f in sync_failures if f["error"].startswith(unavailable)]
        assert len(sync_failures) - len(held_back) == sent  # one failure per request sent
        assert len(held_back) >= 4  # orgs 4-6 and the explicit sync: told why, retried later
        assert explicit.action == "retrying" and explicit.retry_at is not None
        assert explicit.error is not None and explicit.error.startswith(unavailable)
        waiting = {r["organization_key"]: r for r in outbox_rows(t)}
        assert sorted(waiting) == sorted(str(o) for o in orgs)
        for org_id in orgs[3:]:
            row = waiting[str(org_id)]
            assert row["status"] == "pending" and row["last_error"].startswith(unavailable)

        provider.stand_in.faults.clear()  # the provider is back: the probe closes the circuit
        assert wait_for(lambda: [provider.seats(s) for s in subs] == [3] * 6, timeout=30)
        assert wait_for(lambda: outbox_rows(t) == [])
        changes = [(c["organization_key"], c["from_seats"], c["to_seats"])
                   for c in ledger_rows(t)]
        assert sorted(changes) == sorted((str(o), 2, 3) for o in orgs)


@pytest.mark.parametrize("status", [503, 409])
def test_failures_between_successes_or_about_one_request_never_stop_the_requests(
    make_app: AppFactory, provider: World, status: int
) -> None:
    """503s with answers between them, or 409s (a conflict on one subscription, the provider
    up) in a row, leave the circuit closed: the next change is sent at once."""
    t = make_app({"SEAT_BILLING_CIRCUIT_BREAKER_FAILURES": 2,
                  "SEAT_BILLING_RETRY_BASE_SECONDS": 4.0})
    with t.app.app_context():
        orgs, subs = _subscribed(t, provider, 4)
        for n, org_id in enumerate(orgs[:3]):
            if status == 409 or n % 2 == 0:  # (the worker's retry of a row may take it)
                provider.stand_in.faults.fail_next(1, status=status)
            t.add_members(org_id, 1)
        t.add_members(orgs[3], 1)
        assert provider.seats(subs[3]) == 3  # sent at once: the circuit stayed closed
        assert wait_for(lambda: [provider.seats(s) for s in subs] == [3] * 4, timeout=30)
