"""Where one inline change's time goes, against the naive path: wall time, CPU, the provider
request, the garbage collector, and the same for the slowest 1% of changes (issue 16's tail).

One organization on PostgreSQL (or SQLite), the Stripe stand-in in a process of its own; each
change is a member added and committed in an app context of its own, then (naive) the seed's
count-list-update. ``--profile`` prints cProfile's top functions (it slows everything).

    python -m bench.inline_phases --path inline|naive [--db postgresql] [--changes 400]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import statistics
import time
from typing import Any

from bench.common import SEAT_PRICE, RemoteStandIn, make_app, teardown
from bench.naive import NaiveSeatSync
from flask_seat_billing.providers.stripe.transport import PooledClient

WARM_UP = 20


def run(path: str, kind: str, changes: int, profile: bool) -> None:
    remote = RemoteStandIn()
    t = make_app(kind, remote, init=path != "naive", SEAT_BILLING_SYNC_MODE="inline")
    spent = {"http": 0.0, "gc": 0.0, "gc_start": 0.0}
    original = PooledClient.request

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            spent["http"] += time.perf_counter() - started

    def collector(phase: str, info: Any) -> None:
        if phase == "start":
            spent["gc_start"] = time.perf_counter()
        else:
            spent["gc"] += time.perf_counter() - spent["gc_start"]

    try:
        with t.app.app_context():
            org = t.add_organization()
            t.add_members(org.id, 1)
            customer = remote.create_customer(email="o@bench.io")["id"]
            sub = remote.create_subscription(
                customer=customer, items=[{"price": "price_base_m", "quantity": 1},
                                          {"price": SEAT_PRICE, "quantity": 1}],
                metadata={"organization_id": str(org.id), "plan": "pro-monthly"})
            if path != "naive":
                t.billing.link_subscription(org.id, sub["id"])
                t.billing.sync_pending()
            org_id = org.id
        naive = NaiveSeatSync(remote.url, SEAT_PRICE)
        PooledClient.request = timed  # type: ignore[method-assign]
        gc.callbacks.append(collector)
        profiler = cProfile.Profile()
        rows: list[tuple[float, float, float, float]] = []
        for i in range(WARM_UP + changes):
            with t.app.app_context():
                spent["http"] = spent["gc"] = 0.0
                wall, cpu = time.perf_counter(), time.process_time()
                if profile and i >= WARM_UP:
                    profiler.enable()
                t.db.session.add(t.Membership(organization_id=org_id, email=f"m{i}@bench.io"))
                t.db.session.commit()
                if path == "naive":
                    naive.update_subscription_seats(t.db, t.Membership, customer, org_id)
                if profile and i >= WARM_UP:
                    profiler.disable()
                if i >= WARM_UP:
                    rows.append((time.perf_counter() - wall, time.process_time() - cpu,
                                 spent["http"], spent["gc"]))
        walls = sorted(r[0] for r in rows)
        print(f"[{kind}] {path}, {changes} changes: wall median "
              f"{statistics.median(walls) * 1e3:.2f} ms, p99 "
              f"{walls[int(0.99 * len(walls))] * 1e3:.2f} ms; CPU mean "
              f"{statistics.mean(r[1] for r in rows) * 1e3:.2f} ms; provider request(s) median "
              f"{statistics.median(r[2] for r in rows) * 1e3:.2f} ms; GC mean "
              f"{statistics.mean(r[3] for r in rows) * 1e3:.3f} ms")
        slow = sorted(rows, reverse=True)[:max(1, len(rows) // 100)]
        print("  slowest 1%, means: wall {:.2f} ms, CPU {:.2f} ms, provider {:.2f} ms, "
              "GC {:.3f} ms".format(*(statistics.mean(r[k] for r in slow) * 1e3
                                      for k in range(4))))
        if profile:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(40)
    finally:
        PooledClient.request = original  # type: ignore[method-assign]
        if collector in gc.callbacks:
            gc.callbacks.remove(collector)
        teardown(t)
        remote.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", choices=["inline", "naive"], default="inline")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--changes", type=int, default=400)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    run(args.path, args.db, args.changes, args.profile)


if __name__ == "__main__":
    main()
