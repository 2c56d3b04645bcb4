"""Celery dispatch figures (issue 15): sync throughput per worker count, the request-path cost,
broker messages per membership change, and the webhook acknowledgement rate in queued mode.

Real Redis, real ``celery worker`` processes (solo pool, one task at a time each, started like
the tests start them), the Stripe stand-in in this process. Every run uses a queue, key prefix
and app id of its own, deleted at the end.

    python -m bench.celery_dispatch throughput [--db postgresql] [--orgs 200] [--workers 1 2 4]
    python -m bench.celery_dispatch request-path [--db sqlite] [--ops 2000]
    python -m bench.celery_dispatch messages [--db postgresql] [--changes 1000] [--orgs 50]
    python -m bench.celery_dispatch webhooks [--db postgresql] [--events 2000] [--clients 8]

``--broker`` (default ``redis://127.0.0.1:6379/0``) names the Redis server.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import random
import secrets
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from werkzeug.serving import make_server

from bench.common import POSTGRES_URL, database_url, median, percentile, stand_in, subscribe
from bench.request_path import plain_database_url, prepare, timed_insert
from bench.webhook_ingest import SECRET, _post
from tests.apps import AppUnderTest, build_app, teardown_app
from tests.celery.conftest import Cluster, forget
from tests.celery.support import app_config, celery_app

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
logging.getLogger("werkzeug").setLevel(logging.WARNING)


def _tag() -> str:
    return f"fsbbench_{os.getpid()}_{secrets.token_hex(3)}"


def _web_app(db_url: str, stripe_url: str, broker: str, tag: str, create: bool = True,
             **config: Any) -> AppUnderTest:
    merged = {"SEAT_BILLING_STRIPE_API_BASE": stripe_url, **app_config(tag, **config)}
    t = build_app(db_url, config=merged, create=create)
    t.billing.use_celery(celery_app(broker, tag), t.app)
    return t


def _counters(t: AppUnderTest) -> dict[str, int]:
    with t.app.app_context():
        from flask_seat_billing.state import get_state

        markers = get_state().dispatcher.markers
        return markers.counters() if markers is not None else {}


def _pending(t: AppUnderTest) -> int:
    table = t.db.metadata.tables["seat_billing_outbox"]
    with t.app.app_context(), t.db.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _writes(stripe: Any) -> int:
    return sum(1 for r in stripe.writes() if r.path.startswith("/v1/subscription_items/"))


def throughput(db: str, broker: str, orgs: int, counts: list[int]) -> None:
    """Organizations synced per second: ``orgs`` due rows published at once, drained by N
    workers (each sync: a GET and a quantity write against the stand-in)."""
    tag = _tag()
    with stand_in() as stripe:
        url = database_url(db)
        t = _web_app(url, stripe.url, broker, tag, SEAT_BILLING_SYNC_MODE="manual")
        logs = Path(tempfile.mkdtemp(prefix="fsb-celery-bench-"))
        try:
            with t.app.app_context():
                ids = [t.add_organization(f"o{i}").id for i in range(orgs)]
                for org in ids:
                    t.add_members(org, 1)
                    subscribe(t, stripe, org, 1)
            rates: dict[int, float] = {}
            for n in counts:
                cluster = Cluster(broker, tag, url, stripe.url, logs,
                                  config=app_config(tag, SEAT_BILLING_SYNC_MODE="manual"))
                for _ in range(n):
                    cluster.start_worker()
                with t.app.app_context():
                    for org in ids:  # one more member each: every organization owes a write
                        t.add_members(org, 1)
                writes = _writes(stripe)
                started = time.perf_counter()
                with t.app.app_context():
                    published, _ = t.billing.sweep()
                while _pending(t):
                    time.sleep(0.02)
                elapsed = time.perf_counter() - started
                cluster.stop()
                done = _writes(stripe) - writes
                rates[n] = orgs / elapsed
                print(f"  {n} worker process(es): {orgs} organizations ({published} tasks, "
                      f"{done} seat writes) in {elapsed:.2f} s: {rates[n]:.0f} orgs/s")
            base = rates[counts[0]]
            print("  scaling: " + ", ".join(f"{n} workers {rates[n] / base:.2f}x"
                                            for n in counts))
        finally:
            teardown_app(t)
            forget(broker, tag)


def request_path(db: str, broker: str, ops: int) -> None:
    """A member insert + commit in a request-like context: plain app, deferred thread mode and
    deferred Celery mode (one worker process consuming), interleaved one by one; ratios of the
    medians to the plain app. The debounce window is the default 2 s on both sides."""
    tag = _tag()
    warm = 100
    with stand_in() as stripe:
        plain = build_app(plain_database_url(db),
                          config={"SEAT_BILLING_STRIPE_API_BASE": stripe.url}, init=False)
        thread = build_app(database_url(db), config={
            "SEAT_BILLING_STRIPE_API_BASE": stripe.url, "SEAT_BILLING_SYNC_MODE": "deferred"})
        celery_url = database_url(db) if db == "sqlite" else plain_database_url(db).replace(
            "fsb_bench_plain", "fsb_bench_celery")
        if db == "postgresql":
            engine = sa.create_engine(POSTGRES_URL)
            with engine.begin() as conn:
                conn.execute(sa.text("CREATE SCHEMA IF NOT EXISTS fsb_bench_celery"))
            engine.dispose()
        celery_side = _web_app(celery_url, stripe.url, broker, tag,
                               SEAT_BILLING_SYNC_MODE="deferred")
        apps = {"plain": plain, "thread": thread, "celery": celery_side}
        # The Celery side's syncs run in a worker process, as the thread side's run in its
        # thread: each window's task is consumed, and the next commit publishes a new one.
        cluster = Cluster(broker, tag, celery_url, stripe.url,
                          Path(tempfile.mkdtemp(prefix="fsb-celery-bench-")),
                          config=app_config(tag, SEAT_BILLING_SYNC_MODE="deferred"))
        try:
            orgs = {name: prepare(t, stripe, name != "plain") for name, t in apps.items()}
            cluster.start_worker()
            samples: dict[str, list[float]] = {name: [] for name in apps}
            for i in range(warm + ops):
                for name, t in apps.items():
                    took = timed_insert(t, orgs[name], i)
                    if i >= warm:
                        samples[name].append(took)
            base = median(samples["plain"])
            print(f"[{db}] member insert + commit, one app context per change, {ops} ops each:")
            for name in apps:
                m, p99 = median(samples[name]), percentile(samples[name], 0.99)
                print(f"  {name:7s} median {m * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms, "
                      f"ratio {m / base:.2f}")
            counters = _counters(celery_side)
            print(f"  celery side: {counters.get('enqueued', 0)} tasks published, "
                  f"{counters.get('coalesced', 0)} commits coalesced into a queued task (as "
                  "counted in Redis so far)")
        finally:
            cluster.stop()
            for t in apps.values():
                teardown_app(t)
            forget(broker, tag)


def messages(db: str, broker: str, changes: int, orgs: int, seconds: float) -> None:
    """Broker messages per ``changes`` membership changes over ``orgs`` organizations, deferred
    mode (2 s window), spread over ``seconds``, two workers consuming; vs provider writes."""
    tag = _tag()
    rng = random.Random(15)
    with stand_in() as stripe:
        url = database_url(db)
        t = _web_app(url, stripe.url, broker, tag, SEAT_BILLING_SYNC_MODE="deferred",
                     SEAT_BILLING_SYNC_DEBOUNCE_SECONDS=2.0)
        logs = Path(tempfile.mkdtemp(prefix="fsb-celery-bench-"))
        cluster = Cluster(broker, tag, url, stripe.url, logs,
                          config=app_config(tag, SEAT_BILLING_SYNC_MODE="deferred",
                                            SEAT_BILLING_SYNC_DEBOUNCE_SECONDS=2.0))
        try:
            with t.app.app_context():
                ids = [t.add_organization(f"o{i}").id for i in range(orgs)]
                for org in ids:
                    t.add_members(org, 2)
                    subscribe(t, stripe, org, 2)
            cluster.start_worker()
            cluster.start_worker()
            while _pending(t):
                time.sleep(0.1)
            before, writes = _counters(t), _writes(stripe)
            started = time.perf_counter()
            with t.app.app_context():
                for i in range(changes):
                    t.add_members(rng.choice(ids), 1)
                    pause = started + (i + 1) * seconds / changes - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
            while _pending(t):
                time.sleep(0.1)
            time.sleep(1.0)  # follow-up tasks that find nothing still count
            after = _counters(t)
            published = after.get("sync:enqueued", 0) - before.get("sync:enqueued", 0)
            coalesced = after.get("sync:coalesced", 0) - before.get("sync:coalesced", 0)
            done = _writes(stripe) - writes
            print(f"[{db}] {changes} membership changes over {orgs} organizations in "
                  f"{seconds:.0f} s, deferred (2 s window), 2 workers:")
            print(f"  broker messages (sync tasks published): {published}; commits coalesced: "
                  f"{coalesced}; provider seat writes: {done}; messages per write: "
                  f"{published / max(1, done):.2f}")
        finally:
            cluster.stop()
            teardown_app(t)
            forget(broker, tag)


def _serve_queued(db_url: str, stripe_url: str, broker: str, tag: str, ports: Any) -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    t = _web_app(db_url, stripe_url, broker, tag, create=False,
                 SEAT_BILLING_WEBHOOK_PROCESSING="queued",
                 SEAT_BILLING_STRIPE_WEBHOOK_SECRET=SECRET,
                 SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 12, "max_overflow": 8})
    server = make_server("127.0.0.1", 0, t.app, threaded=True)
    ports.put(server.server_port)
    server.serve_forever()


def webhooks(db: str, broker: str, events: int, clients: int, orgs: int) -> None:
    """Verified events acknowledged per second in queued mode (no worker: the request's work
    only), the app in a process of its own as in bench/webhook_ingest.py."""
    tag = _tag()
    with stand_in() as stripe:
        url = database_url(db)
        t = _web_app(url, stripe.url, broker, tag, SEAT_BILLING_WEBHOOK_PROCESSING="queued",
                     SEAT_BILLING_STRIPE_WEBHOOK_SECRET=SECRET)
        context = multiprocessing.get_context("spawn")
        ports = context.Queue()
        child = context.Process(target=_serve_queued, args=(url, stripe.url, broker, tag, ports),
                                daemon=True)
        child.start()
        try:
            port = int(ports.get(timeout=60))
            with t.app.app_context():
                subs = []
                for _ in range(orgs):
                    org = t.add_organization()
                    t.add_members(org.id, 2)
                    subs.append(subscribe(t, stripe, org.id, 2))
            endpoint = f"http://127.0.0.1:{port}/billing/webhooks/stripe"
            bodies = [json.dumps({
                "id": f"evt_bench_{i:06d}", "object": "event",
                "type": "customer.subscription.updated",
                "data": {"object": {"id": subs[i % len(subs)], "object": "subscription"}},
            }).encode() for i in range(events)]
            for body in bodies[:clients]:
                warm = body.replace(b"evt_bench_", b"evt_warm_")
                _post(endpoint, warm, stripe.signature_header(warm, SECRET))

            def deliver(body: bytes) -> tuple[int, float]:
                return _post(endpoint, body, stripe.signature_header(body, SECRET))

            started = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                results = list(pool.map(deliver, bodies))
            elapsed = time.perf_counter() - started
            table = t.db.metadata.tables["seat_billing_webhook_queue"]
            with t.app.app_context(), t.db.engine.connect() as conn:
                recorded = conn.execute(sa.select(sa.func.count()).select_from(table).where(
                    table.c.event_id.like("evt_bench_%"))).scalar_one()
            latencies = [latency for _, latency in results]
            ok = sum(1 for status, _ in results if status == 200)
            print(f"[{db}] queued webhook processing, {clients} client threads, app in its own "
                  f"process (werkzeug threaded):")
            print(f"  {events} events acknowledged in {elapsed:.2f} s: {events / elapsed:.0f} "
                  f"events/s (signature verified, recorded, task published); answered 200: "
                  f"{ok}; recorded once each: {recorded}")
            print(f"  latency p50 {percentile(latencies, 0.5) * 1e3:.1f} ms, p99 "
                  f"{percentile(latencies, 0.99) * 1e3:.1f} ms")
        finally:
            child.terminate()
            child.join(5)
            teardown_app(t)
            forget(broker, tag)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figure", choices=["throughput", "request-path", "messages", "webhooks"])
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--broker", default=DEFAULT_BROKER)
    parser.add_argument("--orgs", type=int, default=None)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args(argv)
    print("command: python -m bench.celery_dispatch " + " ".join(
        sys.argv[1:] if argv is None else argv))
    if args.figure == "throughput":
        throughput(args.db, args.broker, args.orgs or 200, args.workers)
    elif args.figure == "request-path":
        request_path(args.db, args.broker, args.ops)
    elif args.figure == "messages":
        messages(args.db, args.broker, args.changes, args.orgs or 50, args.seconds)
    else:
        webhooks(args.db, args.broker, args.events, args.clients, args.orgs or 50)


if __name__ == "__main__":
    main()
