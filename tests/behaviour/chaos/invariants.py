"""Shared pieces of the chaos suite: invariant checks, a bounded drain and the JSON summaries.

Every chaos test ends with the same three questions, asked the same way, so a regression in any
scenario reads the same on every provider: does each subscribed organization's provider seat
count equal its billable seats, does the ledger record each applied write exactly once, and did
any idempotency key ever travel with two different quantities (which Stripe would refuse, or
worse, replay wrongly; Polar takes no keys, so there the question has no subject).
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from tests.apps import AppUnderTest
from tests.behaviour.conftest import World
from tests.helpers import ledger_rows, outbox_rows

ROOT = Path(__file__).resolve().parents[3]
OUTPUT = ROOT / "test-output"


def database_kind(url: str) -> str:
    return "postgresql" if url.startswith("postgresql") else "sqlite"


def write_summary(name: str, provider: World, figures: dict[str, Any]) -> None:
    """Keep the figures of the last run in ``test-output/chaos-<name>-<provider>-<db>.json``.

    The numbers in docs/reliability.md are copied from these files, so they say what a real run
    injected and observed rather than what the test meant to do.
    """
    OUTPUT.mkdir(exist_ok=True)
    db = figures.get("database", "any")
    path = OUTPUT / f"chaos-{name}-{provider.name}-{db}.json"
    figures = {"scenario": name, "provider": provider.name,
               "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **figures}
    path.write_text(json.dumps(figures, indent=2, sort_keys=True, default=str) + "\n")
    print(f"\nchaos summary {name}: {json.dumps(figures, sort_keys=True, default=str)}")


def drain(t: AppUnderTest, *, timeout: float = 30.0) -> int:
    """Run ``sync_pending`` until the outbox is empty; the number of sync passes it took.

    Retried rows wait for their backoff, so a single drain is not enough after faults: loop,
    bounded by ``timeout``, sleeping briefly between rounds instead of spinning.
    """
    deadline = time.monotonic() + timeout
    passes = 0
    with t.app.app_context():
        while True:
            passes += len(t.billing.sync_pending())
            if not outbox_rows(t) or time.monotonic() > deadline:
                return passes
            time.sleep(0.1)


def mismatches(
    t: AppUnderTest, provider: World, subs: dict[Any, str]
) -> dict[Any, tuple[int, int]]:
    """Organizations whose provider seat count differs from their billable seats:
    {org: (seats, billable)}."""
    found: dict[Any, tuple[int, int]] = {}
    with t.app.app_context():
        for org_id, sub in subs.items():
            quantity = provider.seats(sub)
            billable = t.billing.billable_seats(org_id)
            if quantity != billable:
                found[org_id] = (quantity, billable)
    return found


def key_reuse(provider: World) -> dict[str, set[str]]:
    """Idempotency keys seen with more than one seat count in the stand-in's request log.

    Only a provider with ``idempotency_keys`` receives keys; on one without (Polar) every write
    is sent without a key and this is empty by construction (the ledger's own keys are still
    checked by :func:`ledger_doubles`)."""
    quantities: dict[str, set[str]] = defaultdict(set)
    method, path = provider.dialect.seat_write
    param = provider.dialect.seats_param
    for request in provider.stand_in.requests.all():
        if request.method == method and request.path.startswith(path):
            if request.idempotency_key and param in request.params:
                quantities[request.idempotency_key].add(str(request.params[param]))
    return {k: v for k, v in quantities.items() if len(v) > 1}


def ledger_doubles(t: AppUnderTest) -> list[str]:
    """What in the ledger records one applied write twice; empty when it is clean.

    Two rows with one idempotency key record one write twice; so do two consecutive rows of a
    subscription that both claim the same ``from -> to`` step with nothing in between, since the
    second could not have found the provider at ``from`` again.
    """
    rows = ledger_rows(t)
    problems: list[str] = []
    keys = Counter(r["idempotency_key"] for r in rows if r["idempotency_key"])
    problems += [f"key {k} on {n} rows" for k, n in keys.items() if n > 1]
    missing = [r["id"] for r in rows if r["reason"] == "membership" and not r["idempotency_key"]]
    problems += [f"membership row {i} without key" for i in missing]
    by_sub: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_sub[row["provider_subscription_id"]].append(row)
    for sub, changes in by_sub.items():
        for before, after in zip(changes, changes[1:], strict=False):
            if (before["from_seats"], before["to_seats"]) == (after["from_seats"],
                                                              after["to_seats"]):
                problems.append(f"{sub}: step {before['from_seats']}->{before['to_seats']} twice "
                                f"(rows {before['id']}, {after['id']})")
    return problems


def ledger_gaps(t: AppUnderTest) -> list[str]:
    """Steps the ledger skipped: a row whose ``from`` is not the previous row's ``to``.

    A chain with a gap means the provider moved (a write of ours that timed out, say) without
    the ledger saying so: a seat change lost from the audit trail.
    """
    rows = ledger_rows(t)
    by_sub: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_sub[row["provider_subscription_id"]].append(row)
    gaps = []
    for sub, changes in by_sub.items():
        for before, after in zip(changes, changes[1:], strict=False):
            if after["from_seats"] is not None and after["from_seats"] != before["to_seats"]:
                gaps.append(f"{sub}: row {after['id']} ({after['reason']}) from "
                            f"{after['from_seats']} after {before['to_seats']}")
    return gaps


def membership_op(t: AppUnderTest, rng: Any, orgs: list[Any], tag: str) -> str:
    """One random membership change, committed: join, leave, move or soft delete.

    Needs an app context. Returns the operation's name so runs can count what they did.
    """
    import datetime as dt

    M = t.Membership
    session = t.db.session
    org = rng.choice(orgs)
    live = session.query(M).filter(M.organization_id == org, M.deleted_at.is_(None)).all()
    op = rng.choice(["join", "join", "leave", "move", "soft_delete"]) if live else "join"
    if op == "join":
        session.add(M(organization_id=org, email=f"{tag}-{rng.random():.12f}@x.io"))
    elif op == "leave":
        session.delete(rng.choice(live))
    elif op == "move":
        rng.choice(live).organization_id = rng.choice([o for o in orgs if o != org] or orgs)
    else:
        rng.choice(live).deleted_at = dt.datetime(2026, 1, 1)
    session.commit()
    return op


def seat_writes(provider: World) -> list[Any]:
    """Seat writes the provider applied (not replays, not faulted requests)."""
    method, path = provider.dialect.seat_write
    return [w for w in provider.stand_in.writes() if w.method == method and w.path.startswith(path)]
