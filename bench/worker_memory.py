"""Memory of a process running the deferred worker through 100,000 membership changes.

100 subscribed organizations; 100,000 joins in transactions of 10, deferred mode (the worker
syncs in the background every debounce window). Reports the Python heap (tracemalloc) before,
at its peak and after, and the process's peak RSS: the outbox keeps state in the database, so
memory must stay flat however many changes pass through. The Stripe stand-in runs in a child
process, so its own record of every request is not counted.

    python -m bench.worker_memory [--db sqlite|postgresql] [--changes 100000]
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

from bench.common import RemoteStandIn, make_app, subscribe, teardown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--changes", type=int, default=100_000)
    parser.add_argument("--orgs", type=int, default=100)
    args = parser.parse_args()
    stripe = RemoteStandIn()  # its own process: its bookkeeping is not the worker's memory
    try:
        t = make_app(args.db, stripe, SEAT_BILLING_SYNC_MODE="deferred",
                     SEAT_BILLING_SYNC_DEBOUNCE_SECONDS=2.0, SEAT_BILLING_POLL_SECONDS=1.0)
        try:
            with t.app.app_context():
                orgs = []
                for n in range(args.orgs):
                    org = t.add_organization(f"org{n}")
                    t.add_members(org.id, 1)
                    subscribe(t, stripe, org.id, 1)
                    orgs.append(org.id)
                tracemalloc.start()
                start_heap = tracemalloc.get_traced_memory()[0]
                started = time.perf_counter()
                for i in range(0, args.changes, 10):
                    org_id = orgs[(i // 10) % len(orgs)]
                    t.db.session.add_all(
                        t.Membership(organization_id=org_id, email=f"m{i + k}@bench.io")
                        for k in range(10)
                    )
                    t.db.session.commit()
                    t.db.session.expunge_all()
                elapsed = time.perf_counter() - started
                deadline = time.monotonic() + 120
                while t.billing.pending_syncs() and time.monotonic() < deadline:
                    time.sleep(0.2)
                end_heap, peak_heap = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                wrong = sum(
                    1 for org_id in orgs
                    if t.billing.subscription_for(org_id).seats != t.billing.billable_seats(org_id)
                )
            rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            writes = stripe._call("writes")
            seat_writes = sum(1 for r in writes if r.path.startswith("/v1/subscription_items/"))
            print(f"[{args.db}] {args.changes:,} changes in {elapsed:.1f} s across {args.orgs} "
                  f"orgs (deferred, 2 s debounce): {seat_writes} provider writes, "
                  f"{wrong} wrong quantities at the end")
            print(f"  Python heap: start {start_heap / 2**20:.1f} MiB, peak "
                  f"{peak_heap / 2**20:.1f} MiB, end {end_heap / 2**20:.1f} MiB; "
                  f"process peak RSS {rss_mib:.0f} MiB")
        finally:
            teardown(t)
    finally:
        stripe.close()


if __name__ == "__main__":
    main()
