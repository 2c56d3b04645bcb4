"""Bursts of membership changes across organizations while the provider fails in every way it can.

Injected, interleaved with the changes: bursts of 500s, 429 storms with ``Retry-After``, stalls
past the client timeout after the provider applied the write (the case Stripe's idempotency keys
exist for; Polar has none, so there the engine's read-before-write alone must cover it), and
dropped connections with and without the change applied. Afterwards the outbox is drained and
every organization must be billed for exactly its billable seats, with each applied write in
the ledger once and no idempotency key ever sent with two quantities.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

import pytest

from flask_seat_billing import signals
from tests.behaviour.chaos.invariants import (
    database_kind,
    drain,
    key_reuse,
    ledger_doubles,
    ledger_gaps,
    membership_op,
    mismatches,
    seat_writes,
    write_summary,
)
from tests.behaviour.conftest import AppFactory, World
from tests.helpers import outbox_rows

FAST_RETRIES = {
    "SEAT_BILLING_PROVIDER_TIMEOUT_SECONDS": 1,
    "SEAT_BILLING_STRIPE_MAX_NETWORK_RETRIES": 1,
    "SEAT_BILLING_RETRY_BASE_SECONDS": 0.05,
    "SEAT_BILLING_RETRY_MAX_SECONDS": 0.5,
    "SEAT_BILLING_POLL_SECONDS": 0.1,
    "SEAT_BILLING_SYNC_DEBOUNCE_SECONDS": 0.2,
    "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 10, "max_overflow": 10},
}


KINDS = ["500", "429", "stall", "drop_applied", "drop_lost"]


def inject(provider: World, rng: random.Random, counts: Counter[str], kind: str) -> None:
    """Queue one fault burst of ``kind`` on the subscription endpoints (reads and writes)."""
    faults = provider.stand_in.faults
    prefix = provider.dialect.subscription_prefix
    method, writes = provider.dialect.seat_write
    if kind == "500":
        faults.fail_next(rng.randint(1, 4), status=rng.choice([500, 502, 503]), path_prefix=prefix)
    elif kind == "429":
        faults.rate_limit_next(rng.randint(2, 5), retry_after=0.3, path_prefix=prefix)
    elif kind == "stall":
        faults.stall_next(1, seconds=1.3, apply=True, path_prefix=writes, method=method)
    elif kind == "drop_applied":
        faults.drop_next(1, apply=True, path_prefix=writes, method=method)
    else:
        faults.drop_next(1, apply=False, path_prefix=prefix)
    counts[kind] += 1


@pytest.mark.parametrize("mode", ["inline", "deferred"])
def test_fault_storm_during_membership_bursts(
    make_app: AppFactory, provider: World, database_url: str, mode: str
) -> None:
    rng = random.Random(8_2026)
    t = make_app({**FAST_RETRIES, "SEAT_BILLING_SYNC_MODE": mode})
    failures: list[dict[str, Any]] = []

    def on_failure(sender: Any, **extra: Any) -> None:
        failures.append(extra)

    signals.seat_sync_failed.connect(on_failure)
    ops: Counter[str] = Counter()
    bursts: Counter[str] = Counter()
    started = time.monotonic()
    try:
        with t.app.app_context():
            orgs = [t.add_organization(f"org{i}").id for i in range(4)]
            subs = {}
            for org in orgs:
                t.add_members(org, rng.randint(1, 3))
                subs[org] = provider.subscribe(t, org)
            for step in range(60):
                if step % 6 == 0:
                    inject(provider, rng, bursts, KINDS[(step // 6) % len(KINDS)])
                    if mode == "deferred":
                        time.sleep(0.4)  # one debounce window: the worker meets the faults
                ops[membership_op(t, rng, orgs, f"s{step}")] += 1
            t.db.session.remove()
        provider.stand_in.faults.clear()  # the outage ends; what was not consumed never happened
        passes = drain(t, timeout=40)
        time.sleep(0.3)  # a worker round still in flight finishes before we look
        passes += drain(t, timeout=10)

        with t.app.app_context():
            leftover = outbox_rows(t)
            wrong = mismatches(t, provider, subs)
            doubles = ledger_doubles(t)
            gaps = ledger_gaps(t)
        reused = key_reuse(provider)
        injected = Counter(r.fault for r in provider.stand_in.requests.all() if r.fault)
        figures = {
            "database": database_kind(database_url), "mode": mode,
            "organizations": len(orgs), "membership_operations": sum(ops.values()),
            "operations": dict(ops), "fault_bursts_queued": dict(bursts),
            "faulted_requests": dict(injected),
            "failed_syncs_retried": sum(1 for f in failures if not f["permanent"]),
            "permanent_failures": sum(1 for f in failures if f["permanent"]),
            "applied_seat_writes": len(seat_writes(provider)),
            "final_drain_passes": passes, "outbox_left": len(leftover),
            "final_mismatches": len(wrong), "ledger_double_entries": len(doubles),
            "idempotency_keys_reused_for_other_quantity": len(reused),
            "ledger_gaps": len(gaps), "seconds": round(time.monotonic() - started, 1),
        }
        write_summary(f"provider-faults-{mode}", provider, figures)
    finally:
        signals.seat_sync_failed.disconnect(on_failure)

    assert sum(injected.values()) > 0
    assert leftover == []
    assert wrong == {}
    assert doubles == []
    assert reused == {}
    assert figures["permanent_failures"] == 0
