"""Stripe webhook events processed per second, end to end (issue 3's figure).

The app is served by werkzeug's threaded WSGI server on 127.0.0.1 (no faster server is
installed), in its own process so that it does not share a GIL with the Stripe stand-in and the
client threads; a thread pool POSTs signed ``customer.subscription.updated`` events to it. Each
event is processed for real: size check, ``Stripe-Signature`` verification over the raw body,
dedupe lookup, the organization's lock, a re-fetch of the subscription from the Stripe stand-in
(loopback HTTP), the upsert and the event row in one transaction.

By default consecutive events name different subscriptions (round robin), so no two events in
flight are about the same one and each needs its own re-fetch. ``--together N`` sends runs of N
consecutive events about one subscription, as a provider does when one change makes several
events (an update, invoice events, redeliveries): those that arrive while another is processed
share its re-fetch (``flask_seat_billing/fresh_reads.py``); the figure says how many reads the
stand-in served.

    python -m bench.webhook_ingest [--db postgresql|sqlite] [--events 2000] [--workers 8]
        [--together 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import shlex
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa
from werkzeug.serving import make_server

from bench.common import POSTGRES_URL, database_url, percentile, stand_in, subscribe, teardown
from tests.apps import build_app

SECRET = "whsec_bench"
logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request skews it


def _post(url: str, body: bytes, header: str) -> tuple[int, float]:
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={"Content-Type": "application/json", "Stripe-Signature": header},
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status = int(response.status)
            response.read()
    except urllib.error.HTTPError as error:
        status = int(error.code)
    return status, time.perf_counter() - started


def _config(stripe_url: str, workers: int) -> dict[str, Any]:
    return {
        "SEAT_BILLING_STRIPE_API_BASE": stripe_url,
        "SEAT_BILLING_STRIPE_WEBHOOK_SECRET": SECRET,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": workers + 4, "max_overflow": 8},
    }


def _serve_in_child(db_url: str, stripe_url: str, workers: int, ports: Any) -> None:
    """The app in a process of its own, on tables the parent created (spawned, not forked)."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    t = build_app(db_url, config=_config(stripe_url, workers), create=False)
    server = make_server("127.0.0.1", 0, t.app, threaded=True)
    ports.put(server.server_port)
    server.serve_forever()


def run(
    db_url: str, events: int, workers: int, organizations: int, own_process: bool = True,
    together: int = 1,
) -> dict[str, Any]:
    with stand_in() as stripe:
        t = build_app(db_url, config=_config(stripe.url, workers))
        child = None
        if own_process:
            context = multiprocessing.get_context("spawn")
            ports = context.Queue()
            child = context.Process(
                target=_serve_in_child, args=(db_url, stripe.url, workers, ports), daemon=True
            )
            child.start()
            port = int(ports.get(timeout=30))
        else:
            server = make_server("127.0.0.1", 0, t.app, threaded=True)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            port = server.server_port
        try:
            with t.app.app_context():
                subs = []
                for _ in range(organizations):
                    org = t.add_organization()
                    t.add_members(org.id, 2)
                    subs.append(subscribe(t, stripe, org.id, 2))
            url = f"http://127.0.0.1:{port}/billing/webhooks/stripe"
            bodies = [
                json.dumps({
                    "id": f"evt_bench_{i:06d}", "object": "event",
                    "type": "customer.subscription.updated",
                    "data": {"object": {"id": subs[(i // together) % len(subs)],
                                        "object": "subscription"}},
                }).encode()
                for i in range(events)
            ]
            for body in bodies[:workers]:  # warm up connections and code paths (not counted)
                _post(url, body.replace(b"evt_bench_", b"evt_warm_"),
                      stripe.signature_header(body.replace(b"evt_bench_", b"evt_warm_"), SECRET))

            def deliver(body: bytes) -> tuple[int, float]:
                # Signed at send time, like Stripe: the signature is part of what is measured.
                return _post(url, body, stripe.signature_header(body, SECRET))

            reads_before = _reads(stripe)
            started = time.perf_counter()
            with ThreadPoolExecutor(workers) as pool:
                results = list(pool.map(deliver, bodies))
            elapsed = time.perf_counter() - started
            reads = _reads(stripe) - reads_before
            table = t.db.metadata.tables["seat_billing_webhook_events"]
            with t.app.app_context(), t.db.engine.connect() as conn:
                recorded = conn.execute(
                    sa.select(sa.func.count()).select_from(table)
                    .where(table.c.event_id.like("evt_bench_%"))
                ).scalar_one()
        finally:
            if child is not None:
                child.terminate()
                child.join(5)
            else:
                server.shutdown()
                server.server_close()
            teardown(t)
    latencies = [latency for _, latency in results]
    return {
        "events": events, "ok": sum(1 for s, _ in results if s == 200), "recorded": recorded,
        "elapsed": elapsed, "rate": events / elapsed, "reads": reads,
        "p50_ms": percentile(latencies, 0.5) * 1e3, "p99_ms": percentile(latencies, 0.99) * 1e3,
    }


def _reads(stripe: Any) -> int:
    return sum(1 for r in stripe.requests.all()
               if r.method == "GET" and r.path.startswith("/v1/subscriptions/"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--db-url", default=None, help=f"default {POSTGRES_URL} for postgresql")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--organizations", type=int, default=50)
    parser.add_argument("--together", type=int, default=1,
                        help="consecutive events about one subscription (default 1)")
    parser.add_argument("--same-process", action="store_true",
                        help="serve the app in this process (shares the GIL with the stand-in)")
    args = parser.parse_args(argv)
    url = args.db_url or database_url(args.db)
    result = run(url, args.events, args.workers, args.organizations, not args.same_process,
                 max(1, args.together))
    command = "python -m bench.webhook_ingest " + shlex.join(sys.argv[1:] if argv is None else argv)
    print(f"command: {command.strip()}")
    print(f"database: {sa.make_url(url).render_as_string(hide_password=True)}")
    where = "this process" if args.same_process else "its own process"
    print(f"server: werkzeug threaded, 127.0.0.1, {where}; clients: {args.workers} threads; "
          f"{args.organizations} subscriptions, runs of {max(1, args.together)} events about one")
    print(f"{result['events']} customer.subscription.updated events in {result['elapsed']:.2f} s: "
          f"{result['rate']:.0f} events/s (signature verified, re-fetched, stored)")
    print(f"re-fetches served by the stand-in: {result['reads']}")
    print(f"latency p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms; "
          f"answered 200: {result['ok']}, recorded once each: {result['recorded']}")
    if result["ok"] != result["events"] or result["recorded"] != result["events"]:
        raise SystemExit("some events were not processed")


if __name__ == "__main__":
    main()
