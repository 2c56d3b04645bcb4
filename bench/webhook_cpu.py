"""CPU per webhook event in the app's own process, and SQL statements per event.

The app handles signed ``customer.subscription.updated`` events through ``app.test_client()``
(the whole route: verification, dedupe, lock, re-fetch, store) one at a time, round robin over
50 subscriptions; the Stripe stand-in runs in a process of its own, so its work is not counted.
``time.thread_time()`` around each event gives the app's CPU; statements are counted with a
``before_cursor_execute`` listener. The complement of ``bench.webhook_ingest``, whose rate
depends on everything else the machine runs.

    python -m bench.webhook_cpu [--db postgresql|sqlite] [--events 1000]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import statistics
import time
from typing import Any

import sqlalchemy as sa

from bench.common import RemoteStandIn, database_url, teardown
from tests.apps import BASE_PRICE, SEAT_PRICE, build_app

SECRET = "whsec_bench"
WARM_UP = 50
SUBSCRIPTIONS = 50


def _sign(body: bytes) -> str:
    stamp = int(time.time())
    mac = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={mac}"


def run(kind: str, events: int) -> dict[str, float]:
    remote = RemoteStandIn()
    t = build_app(database_url(kind), config={"SEAT_BILLING_STRIPE_API_BASE": remote.url,
                                              "SEAT_BILLING_STRIPE_WEBHOOK_SECRET": SECRET})
    statements = [0]

    def count(*_: Any) -> None:
        statements[0] += 1

    try:
        with t.app.app_context():
            sa.event.listen(t.db.engine, "before_cursor_execute", count)
            subs = []
            for _ in range(SUBSCRIPTIONS):
                org = t.add_organization()
                t.add_members(org.id, 2)
                sub = remote.create_subscription(
                    items=[{"price": BASE_PRICE, "quantity": 1},
                           {"price": SEAT_PRICE, "quantity": 2}],
                    metadata={"organization_id": str(org.id), "plan": "pro-monthly"})
                t.billing.link_subscription(org.id, sub["id"])
                subs.append(sub["id"])
        client = t.app.test_client()
        cpu: list[float] = []
        counted_from = 0
        for i in range(WARM_UP + events):
            body = json.dumps({
                "id": f"evt_{i:06d}", "object": "event", "type": "customer.subscription.updated",
                "data": {"object": {"id": subs[i % SUBSCRIPTIONS], "object": "subscription"}},
            }).encode()
            if i == WARM_UP:
                counted_from = statements[0]
            started = time.thread_time()
            response = client.post("/billing/webhooks/stripe", data=body, headers={
                "Content-Type": "application/json", "Stripe-Signature": _sign(body)})
            spent = time.thread_time() - started
            if response.status_code != 200:
                raise SystemExit(f"event {i} answered {response.status_code}: {response.data!r}")
            if i >= WARM_UP:
                cpu.append(spent)
        return {"median_ms": statistics.median(cpu) * 1e3, "mean_ms": statistics.mean(cpu) * 1e3,
                "statements": (statements[0] - counted_from) / events}
    finally:
        teardown(t)
        remote.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args()
    result = run(args.db, args.events)
    print(f"[{args.db}] {args.events} events, one at a time, round robin over {SUBSCRIPTIONS} "
          f"subscriptions: CPU per event median {result['median_ms']:.2f} ms, mean "
          f"{result['mean_ms']:.2f} ms; SQL statements per event {result['statements']:.1f}")


if __name__ == "__main__":
    main()
