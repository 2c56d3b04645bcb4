"""Figures for ``flask seats resync`` over 10,000 organizations, 1% drifted (issue #6).

Against the Stripe stand-in on loopback and PostgreSQL. Two runs:

- cold: the local subscription table is empty, so the pull links all 10,000 subscriptions
  through their ``metadata.organization_id`` (bulk insert), then pushes the 1% that drifted;
- warm: the table is current, another 1% drifts on the provider's side; the pull refreshes
  those rows (bulk update) and pushes them.

Prints provider requests (listing pages, writes), database statements outside the push (the
resync's own: a handful whatever the size) and inside it (the sync engine's per-organization
work), and wall time. Usage::

    SEAT_BILLING_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/db \\
        python bench/resync_10k.py [--orgs 10000] [--rate 20]

``--rate`` sets ``SEAT_BILLING_MAX_REQUESTS_PER_SECOND``; the default (None) is the limit the CLI
picks for a test key, 20/s, which dominates the wall time of the push.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.apps import PRO_MONTHLY

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_seat_billing.cli import seats  # noqa: E402
from flask_seat_billing.state import get_state  # noqa: E402
from flask_seat_billing.testing.stripe_server import StripeStandIn  # noqa: E402
from tests.apps import BASE_PRICE, SEAT_PRICE, build_app  # noqa: E402

MEMBERS = 2


class Counter:
    """Counts cursor executions, split by whether the sync engine's push is running."""

    def __init__(self) -> None:
        self.outside = 0
        self.push = 0
        self.in_push = False

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        if self.in_push:
            self.push += 1
        else:
            self.outside += 1


def setup(url: str, stripe: StripeStandIn, orgs: int, rate: float | None) -> Any:
    product = stripe.create_product(name="Pro")["id"]
    stripe.create_price(id=BASE_PRICE, product=product, unit_amount=1999, interval="month")
    stripe.create_price(id=SEAT_PRICE, product=product, unit_amount=1000, interval="month")
    config = {"SEAT_BILLING_STRIPE_API_BASE": stripe.url, "SEAT_BILLING_SYNC_MODE": "manual",
              "SEAT_BILLING_MAX_REQUESTS_PER_SECOND": rate}
    t = build_app(url, config=config)
    t.app.cli.add_command(seats, "seats")
    with t.app.app_context(), t.db.engine.begin() as conn:
        conn.execute(sa.insert(t.Organization), [{"id": i, "name": f"org {i}"}
                                                 for i in range(orgs)])
        conn.execute(sa.insert(t.Membership), [
            {"organization_id": i, "email": f"u{m}@{i}.example", "role": "member"}
            for i in range(orgs) for m in range(MEMBERS)])
    ids = stripe.bulk_subscribe(range(orgs), PRO_MONTHLY, MEMBERS)
    return t, ids


def drift(stripe: StripeStandIn, ids: list[str], every: int, offset: int) -> int:
    drifted = ids[offset::every]
    for sub in drifted:
        stripe.set_seats(sub, MEMBERS + 3, PRO_MONTHLY)
    return len(drifted)


def measure(t: Any, stripe: StripeStandIn, label: str, drifted: int) -> None:
    counter = Counter()
    with t.app.app_context():
        state = get_state()
        engine_sync = state.engine.sync

        def counted_sync(*args: Any, **kwargs: Any) -> Any:
            counter.in_push = True
            try:
                return engine_sync(*args, **kwargs)
            finally:
                counter.in_push = False

        state.engine.sync = counted_sync  # type: ignore[method-assign]
        sa.event.listen(t.db.engine, "before_cursor_execute", counter)
        stripe.requests.clear()
        started = time.perf_counter()
        result = t.app.test_cli_runner().invoke(args=["seats", "resync", "--json"])
        elapsed = time.perf_counter() - started
        sa.event.remove(t.db.engine, "before_cursor_execute", counter)
        state.engine.sync = engine_sync  # type: ignore[method-assign]
    summary = json.loads(result.output)["summary"]
    requests = stripe.requests.all()
    pages = sum(1 for r in requests if r.method == "GET" and r.path == "/v1/subscriptions")
    gets = sum(1 for r in requests if r.method == "GET") - pages
    writes = sum(1 for r in requests if r.method == "POST")
    print(f"{label}: exit {result.exit_code}; {summary['summary']}")
    print(f"  provider requests: {len(requests)} = {pages} listing pages + {writes} writes "
          f"+ {gets} other GETs (drifted organizations: {drifted})")
    print(f"  database statements: {counter.outside} by resync itself (pull + compare), "
          f"{counter.push} inside the sync engine's push "
          f"({counter.push / max(1, summary['drifted']):.1f} per pushed organization)")
    print(f"  wall time: {elapsed:.2f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orgs", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=None)
    args = parser.parse_args()
    url = os.environ.get("SEAT_BILLING_BENCH_POSTGRES_URL") or os.environ.get(
        "SEAT_BILLING_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/seat_billing_test")
    with StripeStandIn() as stripe:
        started = time.perf_counter()
        t, ids = setup(url, stripe, args.orgs, args.rate)
        every = 100
        first = drift(stripe, ids, every, 0)
        print(f"setup: {args.orgs} organizations x {MEMBERS} members, {len(ids)} subscriptions "
              f"in {time.perf_counter() - started:.1f}s; rate limit {args.rate or 'default'}")
        measure(t, stripe, "cold (empty local table)", first)
        second = drift(stripe, ids, every, every // 2)
        measure(t, stripe, "warm (table current, new drift)", second)
        with t.app.app_context():
            t.db.drop_all()


if __name__ == "__main__":
    main()
