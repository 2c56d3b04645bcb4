"""What a member insert + commit pays on the request path, with and without the extension.

Deferred mode: the request writes the member and the outbox row in one transaction and nudges
the background worker; the provider is called later. The figure is the ratio of per-operation
medians (extension / plain app), measured in alternating rounds on the same database so machine
noise hits both sides alike. Target: at most 1.3.

    python -m bench.request_path [--db sqlite|postgresql] [--ops 500] [--rounds 4]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench.common import make_app, median, percentile, stand_in, subscribe, teardown


def timed_inserts(t: Any, org_id: Any, ops: int) -> list[float]:
    samples = []
    with t.app.app_context():
        for i in range(ops):
            started = time.perf_counter()
            t.db.session.add(t.Membership(organization_id=org_id, email=f"m{i}@bench.io"))
            t.db.session.commit()
            samples.append(time.perf_counter() - started)
        t.db.session.remove()
    return samples


def prepare(t: Any, stripe: Any, with_subscription: bool) -> Any:
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 1)
        if with_subscription:
            subscribe(t, stripe, org.id, 1)
        return org.id


def run(kind: str, ops: int, rounds: int) -> None:
    with stand_in() as stripe:
        baseline: list[float] = []
        extension: list[float] = []
        for _ in range(rounds):
            plain = make_app(kind, stripe, init=False)
            baseline += timed_inserts(plain, prepare(plain, stripe, False), ops)
            teardown(plain)
            deferred = make_app(kind, stripe, SEAT_BILLING_SYNC_MODE="deferred",
                                SEAT_BILLING_SYNC_DEBOUNCE_SECONDS=2.0)
            extension += timed_inserts(deferred, prepare(deferred, stripe, True), ops)
            teardown(deferred)
    b, e = median(baseline), median(extension)
    print(f"[{kind}] member insert + commit, {ops * rounds} ops each side:")
    b99, e99 = percentile(baseline, 0.99), percentile(extension, 0.99)
    print(f"  plain app:        median {b * 1e3:.3f} ms, p99 {b99 * 1e3:.3f} ms")
    print(f"  deferred mode:    median {e * 1e3:.3f} ms, p99 {e99 * 1e3:.3f} ms")
    print(f"  ratio (median):   {e / b:.2f}  (target <= 1.3)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--ops", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    run(args.db, args.ops, args.rounds)


if __name__ == "__main__":
    main()
