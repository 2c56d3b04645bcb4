"""The same workload through the naive approach and through flask-seat-billing (issue 8).

1,000 membership changes (random joins and leaves, one per transaction) across 50
organizations, with the same injected faults (a 500 every 25 changes, then a provider outage
during the last 5% of changes, which ends when the workload does), through:
(a) the naive approach (bench/naive.py), (b) flask-seat-billing inline, (c) deferred. Reports
provider requests per 1,000 changes, request-path latency (median, p99) as ratios to (a), and
whether every organization ends with the right quantity after the faults.

The Stripe stand-in runs in a process of its own (``RemoteStandIn``), as Stripe would: in the
benchmark's interpreter it would share the GIL with the code measured and inflate every latency
(the more requests a path makes, the more). ``--same-process`` runs it the old way.

    python -m bench.naive_vs_engine [--db sqlite|postgresql] [--changes 1000] [--orgs 50]
                                    [--interleave] [--latency-ms 0]

``--latency-ms`` makes the stand-in answer every request that much later during the measured
changes, as the real provider's network round trip would (``faults.set_latency``).

``--interleave`` runs the naive path and inline mode together, alternating change by change
(deferred mode is left out), so that the other load of a shared machine, which drifts over the
minutes a run takes, weighs on both latencies alike; the ratios are then far steadier.
"""

from __future__ import annotations

import argparse
import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.common import (
    SEAT_PRICE,
    RemoteStandIn,
    make_app,
    median,
    percentile,
    stand_in,
    teardown,
)
from bench.naive import NaiveSeatSync
from tests.apps import PRO_MONTHLY

FAULT_EVERY = 25
SAME_PROCESS = False
LATENCY = 0.0  # seconds added to every provider answer during the measured changes


class _Remote:
    """The few stand-in calls this benchmark makes, over ``RemoteStandIn``'s pipe."""

    def __init__(self, remote: RemoteStandIn) -> None:
        self.remote = remote
        self.url = remote.url

    def fail_next(self, n: int, status: int) -> None:
        self.remote._call("faults.fail_next", n, status=status)

    def clear_faults(self) -> None:
        self.remote._call("faults.clear")

    def set_latency(self, seconds: float) -> None:
        self.remote._call("faults.set_latency", seconds)

    def request_count(self) -> int:
        return int(self.remote._call("requests.__len__"))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.remote, name)


class _Local(_Remote):
    def __init__(self, stripe: Any) -> None:  # noqa: D107 - the same calls, in this process
        self.stripe = stripe
        self.url = stripe.url

    def fail_next(self, n: int, status: int) -> None:
        self.stripe.faults.fail_next(n, status=status)

    def clear_faults(self) -> None:
        self.stripe.faults.clear()

    def set_latency(self, seconds: float) -> None:
        self.stripe.faults.set_latency(seconds)

    def request_count(self) -> int:
        return len(self.stripe.requests)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stripe, name)


@contextmanager
def provider() -> Iterator[Any]:
    """The stand-in: in its own process (default), or in this one (``--same-process``)."""
    if SAME_PROCESS:
        with stand_in() as stripe:
            yield _Local(stripe)
        return
    remote = RemoteStandIn()
    try:
        yield _Remote(remote)
    finally:
        remote.close()


def _setup(t: Any, stripe: Any, orgs: int, linked: bool) -> list[tuple[Any, str, str]]:
    """Organizations with 3 members and a subscription each: (org id, customer, subscription)."""
    out = []
    with t.app.app_context():
        for n in range(orgs):
            org = t.add_organization(f"org{n}")
            t.add_members(org.id, 3)
            customer = stripe.create_customer(email=f"o{n}@bench.io")["id"]
            sub = stripe.create_subscription(
                customer=customer,
                items=[{"price": "price_base_m", "quantity": 1},
                       {"price": SEAT_PRICE, "quantity": 3}],
                metadata={"organization_id": str(org.id), "plan": "pro-monthly"},
            )
            if linked:
                t.billing.link_subscription(org.id, sub["id"])
            out.append((org.id, customer, sub["id"]))
    return out


class _Workload:
    """The changes of one path, one at a time: the same sequence for every path (seed 7)."""

    def __init__(self, t: Any, stripe: Any, orgs: list[tuple[Any, str, str]], changes: int,
                 after_commit: Any) -> None:
        self.t, self.stripe, self.orgs, self.changes = t, stripe, orgs, changes
        self.after_commit = after_commit
        self.rng = random.Random(7)
        self.latencies: list[float] = []
        self.members: dict[Any, list[int]] = {}
        with t.app.app_context():
            for org_id, _, _ in orgs:
                self.members[org_id] = [
                    m.id for m in t.Membership.query.filter_by(organization_id=org_id)]
        self.outage_from = changes - changes // 20
        stripe.set_latency(LATENCY)  # the set-up above ran without it

    def step(self, i: int) -> None:
        """Change ``i``, in an app context of its own (as a request would be), timed."""
        t, stripe, rng = self.t, self.stripe, self.rng
        if i == self.outage_from:
            stripe.fail_next(10**6, status=503)
        elif i % FAULT_EVERY == 0 and i < self.outage_from:
            stripe.fail_next(1, status=500)
        org_id, customer, _ = self.orgs[rng.randrange(len(self.orgs))]
        with t.app.app_context():
            started = time.perf_counter()
            if self.members[org_id] and rng.random() < 0.45:
                victim = t.db.session.get(t.Membership, self.members[org_id].pop())
                t.db.session.delete(victim)
            else:
                member = t.Membership(organization_id=org_id, email=f"c{i}@bench.io")
                t.db.session.add(member)
                t.db.session.flush()
                self.members[org_id].append(member.id)
            t.db.session.commit()
            self.after_commit(org_id, customer)
            self.latencies.append(time.perf_counter() - started)

    def end(self) -> None:
        self.stripe.clear_faults()  # the outage ends with the workload


def _workload(t: Any, stripe: Any, orgs: list[tuple[Any, str, str]], changes: int,
              after_commit: Any) -> list[float]:
    work = _Workload(t, stripe, orgs, changes, after_commit)
    for i in range(changes):
        work.step(i)
    work.end()
    return work.latencies


def _correct(t: Any, stripe: Any, orgs: list[tuple[Any, str, str]]) -> int:
    wrong = 0
    with t.app.app_context():
        for org_id, _, sub in orgs:
            count = t.Membership.query.filter_by(organization_id=org_id, deleted_at=None).count()
            if stripe.seats(sub, PRO_MONTHLY) != max(1, count):
                wrong += 1
    return wrong


def run_naive(kind: str, changes: int, orgs: int) -> dict[str, Any]:
    with provider() as stripe:
        t = make_app(kind, stripe, init=False)
        try:
            setup = _setup(t, stripe, orgs, linked=False)
            naive = NaiveSeatSync(stripe.url, SEAT_PRICE)
            before = stripe.request_count()
            lat = _workload(t, stripe, setup, changes, lambda org, customer: naive.
                            update_subscription_seats(t.db, t.Membership, customer, org))
            requests = stripe.request_count() - before
            time.sleep(0.5)
            return {"requests": requests, "latencies": lat, "wrong": _correct(t, stripe, setup)}
        finally:
            teardown(t)


def run_engine(kind: str, mode: str, changes: int, orgs: int) -> dict[str, Any]:
    with provider() as stripe:
        t = make_app(kind, stripe, SEAT_BILLING_SYNC_MODE=mode,
                     SEAT_BILLING_SYNC_DEBOUNCE_SECONDS=2.0, SEAT_BILLING_RETRY_BASE_SECONDS=0.2,
                     SEAT_BILLING_POLL_SECONDS=0.5)
        try:
            setup = _setup(t, stripe, orgs, linked=True)
            before = stripe.request_count()
            lat = _workload(t, stripe, setup, changes, lambda org, customer: None)
            with t.app.app_context():
                deadline = time.monotonic() + 60
                while t.billing.pending_syncs() and time.monotonic() < deadline:
                    time.sleep(0.2)
                requests = stripe.request_count() - before
                wrong = _correct(t, stripe, setup)
            return {"requests": requests, "latencies": lat, "wrong": wrong}
        finally:
            teardown(t)


def run_interleaved(kind: str, changes: int, orgs: int) -> dict[str, dict[str, Any]]:
    """The naive path and inline mode side by side: each change goes to one, then the other
    (which goes first alternates), each with its own stand-in process and database, so a
    change in the machine's load hits both alike (the machine is shared)."""
    with provider() as naive_stripe, provider() as inline_stripe:
        tn = make_app(kind, naive_stripe, init=False)
        ti = make_app(kind, inline_stripe, second_database=True, SEAT_BILLING_SYNC_MODE="inline",
                      SEAT_BILLING_SYNC_DEBOUNCE_SECONDS=2.0, SEAT_BILLING_RETRY_BASE_SECONDS=0.2,
                      SEAT_BILLING_POLL_SECONDS=0.5)
        try:
            naive_setup = _setup(tn, naive_stripe, orgs, linked=False)
            inline_setup = _setup(ti, inline_stripe, orgs, linked=True)
            naive = NaiveSeatSync(naive_stripe.url, SEAT_PRICE)
            before = (naive_stripe.request_count(), inline_stripe.request_count())
            works = [
                _Workload(tn, naive_stripe, naive_setup, changes, lambda org, customer: naive.
                          update_subscription_seats(tn.db, tn.Membership, customer, org)),
                _Workload(ti, inline_stripe, inline_setup, changes, lambda org, customer: None),
            ]
            for i in range(changes):
                for work in (works if i % 2 == 0 else works[::-1]):
                    work.step(i)
            for work in works:
                work.end()
            naive_requests = naive_stripe.request_count() - before[0]
            with ti.app.app_context():
                deadline = time.monotonic() + 60
                while ti.billing.pending_syncs() and time.monotonic() < deadline:
                    time.sleep(0.2)
            time.sleep(0.5)
            return {
                "naive": {"requests": naive_requests, "latencies": works[0].latencies,
                          "wrong": _correct(tn, naive_stripe, naive_setup)},
                "inline": {"requests": inline_stripe.request_count() - before[1],
                           "latencies": works[1].latencies,
                           "wrong": _correct(ti, inline_stripe, inline_setup)},
            }
        finally:
            teardown(tn)
            teardown(ti)


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--orgs", type=int, default=50)
    parser.add_argument("--same-process", action="store_true",
                        help="run the stand-in in this process (shares the GIL)")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="add this round trip to every provider answer (the stand-in "
                             "answers over loopback in about 1 ms; Stripe from a server "
                             "is tens of ms away)")
    parser.add_argument("--interleave", action="store_true",
                        help="naive and inline side by side, change by change (no deferred); "
                             "PostgreSQL needs a second database "
                             "(SEAT_BILLING_BENCH_POSTGRES_URL_B)")
    args = parser.parse_args()
    global SAME_PROCESS, LATENCY
    SAME_PROCESS = args.same_process
    LATENCY = args.latency_ms / 1000
    if args.interleave:
        both = run_interleaved(args.db, args.changes, args.orgs)
        naive, results = both["naive"], {"inline": both["inline"]}
    else:
        naive = run_naive(args.db, args.changes, args.orgs)
        results = {
            "inline": run_engine(args.db, "inline", args.changes, args.orgs),
            "deferred": run_engine(args.db, "deferred", args.changes, args.orgs),
        }
    n_med, n_p99 = median(naive["latencies"]), percentile(naive["latencies"], 0.99)
    per_k = 1000 / args.changes
    where = "this process" if args.same_process else "its own process"
    print(f"[{args.db}] {args.changes} changes across {args.orgs} orgs, a 500 every "
          f"{FAULT_EVERY} changes and an outage over the last 5%; stand-in in {where}"
          f"{f', answering {args.latency_ms:g} ms late' if args.latency_ms else ''}"
          f"{'; naive and inline interleaved change by change' if args.interleave else ''}")
    print(f"  naive:    {naive['requests'] * per_k:.0f} provider requests per 1,000 changes, "
          f"latency median {n_med * 1e3:.2f} ms p99 {n_p99 * 1e3:.2f} ms, "
          f"wrong quantities at the end: {naive['wrong']}/{args.orgs}")
    for mode, r in results.items():
        med, p99 = median(r["latencies"]), percentile(r["latencies"], 0.99)
        print(f"  {mode:8s}: {r['requests'] * per_k:.0f} provider requests per 1,000 changes "
              f"(ratio {r['requests'] / max(1, naive['requests']):.2f}), latency median "
              f"{med * 1e3:.2f} ms (ratio {med / n_med:.2f}) p99 {p99 * 1e3:.2f} ms "
              f"(ratio {p99 / n_p99:.2f}), wrong quantities at the end: {r['wrong']}/{args.orgs}")


if __name__ == "__main__":
    main()
