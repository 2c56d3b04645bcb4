"""What a member insert + commit pays on the request path, with and without the extension.

Deferred mode: the request writes the member and the outbox row in one transaction and nudges
the background worker; the provider is called later. Two apps run side by side, one with the
extension and one without, each on its own database (SQLite: two files; PostgreSQL: the bench
database and a schema of its own in it), and the operations alternate one by one, so a noisy
neighbour or a CPU frequency change hits both sides alike. Each operation runs in its own app
context with a fresh session, as a request would; only ``add`` + ``commit`` is timed. The
figure is the ratio of the medians (extension / plain app). Target: at most 1.3.

A second figure keeps one session for ten changes in a row on each side (a script or a worker
rather than a request), batches alternating: the extension's cost is the same, the plain app's a
little lower without the session set-up, so its ratio is usually the higher of the two.

    python -m bench.request_path [--db sqlite|postgresql] [--ops 3000]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import sqlalchemy as sa

from bench.common import (
    POSTGRES_URL,
    build_app,
    database_url,
    make_app,
    median,
    percentile,
    stand_in,
    subscribe,
    teardown,
)

PLAIN_SCHEMA = "fsb_bench_plain"
WARM_UP = 100
BATCH = 10


def plain_database_url(kind: str) -> str:
    """A database for the app without the extension, apart from the extension's tables."""
    if kind == "sqlite":
        return database_url(kind)
    engine = sa.create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {PLAIN_SCHEMA}"))
    engine.dispose()
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}options=-csearch_path%3D{PLAIN_SCHEMA}"


def prepare(t: Any, stripe: Any, with_subscription: bool) -> Any:
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 1)
        if with_subscription:
            subscribe(t, stripe, org.id, 1)
        return org.id


def timed_insert(t: Any, org_id: Any, i: int) -> float:
    """One member added and committed, in a request-like app context; only the work is timed."""
    with t.app.app_context():
        session = t.db.session()  # created before the clock starts: both sides alike
        started = time.perf_counter()
        session.add(t.Membership(organization_id=org_id, email=f"m{i}@bench.io"))
        session.commit()
        return time.perf_counter() - started


def timed_batch(t: Any, org_id: Any, start: int, size: int) -> list[float]:
    """``size`` members added one per commit through one session (a script, a worker)."""
    samples = []
    with t.app.app_context():
        session = t.db.session()
        for i in range(start, start + size):
            started = time.perf_counter()
            session.add(t.Membership(organization_id=org_id, email=f"m{i}@bench.io"))
            session.commit()
            samples.append(time.perf_counter() - started)
    return samples


def report(title: str, baseline: list[float], extension: list[float]) -> None:
    b, e = median(baseline), median(extension)
    b99, e99 = percentile(baseline, 0.99), percentile(extension, 0.99)
    print(f"  {title}, {len(baseline)} ops each side:")
    print(f"    plain app:      median {b * 1e3:.3f} ms, p99 {b99 * 1e3:.3f} ms")
    print(f"    deferred mode:  median {e * 1e3:.3f} ms, p99 {e99 * 1e3:.3f} ms")
    print(f"    ratio (median): {e / b:.2f}  (target <= 1.1, issue 16)")


def run(kind: str, ops: int) -> None:
    with stand_in() as stripe:
        plain = build_app(plain_database_url(kind),
                          config={"SEAT_BILLING_STRIPE_API_BASE": stripe.url}, init=False)
        deferred = make_app(kind, stripe, SEAT_BILLING_SYNC_MODE="deferred",
                            SEAT_BILLING_SYNC_DEBOUNCE_SECONDS=2.0)
        try:
            plain_org = prepare(plain, stripe, False)
            deferred_org = prepare(deferred, stripe, True)
            print(f"[{kind}] member insert + commit, interleaved with the plain app:")
            baseline: list[float] = []
            extension: list[float] = []
            for i in range(WARM_UP + ops):
                b = timed_insert(plain, plain_org, i)
                e = timed_insert(deferred, deferred_org, i)
                if i >= WARM_UP:
                    baseline.append(b)
                    extension.append(e)
            report("one app context and session per change (a request)", baseline, extension)
            baseline, extension = [], []
            for start in range(0, WARM_UP + ops, BATCH):
                b_batch = timed_batch(plain, plain_org, start, BATCH)
                e_batch = timed_batch(deferred, deferred_org, start, BATCH)
                if start >= WARM_UP:
                    baseline += b_batch
                    extension += e_batch
            report(f"one session for {BATCH} changes in a row (a script)", baseline, extension)
        finally:
            teardown(deferred)
            teardown(plain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--ops", type=int, default=3000)
    args = parser.parse_args()
    run(args.db, args.ops)


if __name__ == "__main__":
    main()
