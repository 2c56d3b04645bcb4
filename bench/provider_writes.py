"""Provider writes for bursts of membership changes (issue 2's first figure).

1,000 members added in one transaction (target: 1 write), and 1,000 added one per transaction
in deferred mode with a 2 s debounce (target: a handful, not 1,000).

    python -m bench.provider_writes [--db sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import time

from bench.common import make_app, seat_writes, stand_in, subscribe, teardown
from tests.apps import PRO_MONTHLY


def one_transaction(kind: str) -> tuple[int, int]:
    with stand_in() as stripe:
        t = make_app(kind, stripe, SEAT_BILLING_SYNC_MODE="inline")
        try:
            with t.app.app_context():
                org = t.add_organization()
                t.add_members(org.id, 1)
                sub = subscribe(t, stripe, org.id, 1)
                t.add_members(org.id, 1000)
                return seat_writes(stripe), stripe.seats(sub, PRO_MONTHLY)
        finally:
            teardown(t)


def one_per_transaction_deferred(kind: str) -> tuple[int, int, float]:
    with stand_in() as stripe:
        t = make_app(kind, stripe, SEAT_BILLING_SYNC_MODE="deferred",
                     SEAT_BILLING_SYNC_DEBOUNCE_SECONDS=2.0, SEAT_BILLING_POLL_SECONDS=0.5)
        try:
            with t.app.app_context():
                org = t.add_organization()
                t.add_members(org.id, 1)
                sub = subscribe(t, stripe, org.id, 1)
                started = time.perf_counter()
                for _ in range(1000):
                    t.add_members(org.id, 1)
                elapsed = time.perf_counter() - started
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and (
                    stripe.seats(sub, PRO_MONTHLY) != 1001 or t.billing.pending_syncs()
                ):
                    time.sleep(0.1)
                return seat_writes(stripe), stripe.seats(sub, PRO_MONTHLY), elapsed
        finally:
            teardown(t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    writes, quantity = one_transaction(args.db)
    print(f"[{args.db}] 1,000 members in one transaction: {writes} provider write(s), "
          f"final quantity {quantity} (expected 1001)")
    writes, quantity, elapsed = one_per_transaction_deferred(args.db)
    print(f"[{args.db}] 1,000 members one per transaction over {elapsed:.1f} s, deferred mode, "
          f"2 s debounce: {writes} provider write(s), final quantity {quantity} (expected 1001)")


if __name__ == "__main__":
    main()
