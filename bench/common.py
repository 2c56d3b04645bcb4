"""What every benchmark needs: a user-like app on SQLite or PostgreSQL, and a Stripe stand-in.

The app is the one the test suite uses (tests/apps.py), so the figures describe the same code
paths the tests prove correct.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_seat_billing.testing import StripeStandIn  # noqa: E402
from tests.apps import (  # noqa: E402
    BASE_PRICE,
    SEAT_ONLY_PRICE,
    SEAT_PRICE,
    YEARLY_BASE,
    YEARLY_SEAT,
    AppUnderTest,
    build_app,
    teardown_app,
)

teardown = teardown_app

POSTGRES_URL = os.environ.get(
    "SEAT_BILLING_BENCH_POSTGRES_URL",
    "postgresql+psycopg://postgres@127.0.0.1:5432/seat_billing_bench",
)


@contextmanager
def stand_in() -> Iterator[Any]:
    """A running Stripe stand-in with the prices of tests/apps.py."""
    with StripeStandIn() as s:
        product = s.create_product(name="Pro")["id"]
        for price, amount, interval in (
            (BASE_PRICE, 1999, "month"), (SEAT_PRICE, 1000, "month"),
            (SEAT_ONLY_PRICE, 1000, "month"), (YEARLY_BASE, 19999, "year"),
            (YEARLY_SEAT, 10000, "year"),
        ):
            s.create_price(id=price, product=product, unit_amount=amount, interval=interval)
        yield s


# A second database, for a benchmark that runs two apps at once (it must exist too).
POSTGRES_URL_B = os.environ.get("SEAT_BILLING_BENCH_POSTGRES_URL_B", POSTGRES_URL + "_b")


def database_url(kind: str, second: bool = False) -> str:
    if kind == "postgresql":
        return POSTGRES_URL_B if second else POSTGRES_URL
    return f"sqlite:///{tempfile.mkdtemp(prefix='fsb-bench-')}/bench.db"


def make_app(kind: str, stripe: Any, init: bool = True, second_database: bool = False,
             **config: Any) -> AppUnderTest:
    merged = {"SEAT_BILLING_STRIPE_API_BASE": stripe.url, **config}
    return build_app(database_url(kind, second_database), config=merged, init=init)


def subscribe(t: AppUnderTest, stripe: Any, org_id: Any, seats: int) -> str:
    sub = stripe.create_subscription(
        items=[{"price": BASE_PRICE, "quantity": 1}, {"price": SEAT_PRICE, "quantity": seats}],
        metadata={"organization_id": str(org_id), "plan": "pro-monthly"},
    )
    t.billing.link_subscription(org_id, sub["id"])
    return str(sub["id"])


def seat_writes(stripe: Any) -> int:
    return sum(1 for r in stripe.writes() if r.path.startswith("/v1/subscription_items/"))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


class RemoteStandIn:
    """A Stripe stand-in in a child process, driven by calls over a pipe.

    For memory figures: the stand-in keeps every request and event it ever saw, so sharing the
    measured process with it would charge its bookkeeping to the library.
    """

    def __init__(self) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve_stand_in, args=(child,), daemon=True)
        self._process.start()
        self.url: str = self._call("url")

    def _call(self, path: str, *args: Any, **kwargs: Any) -> Any:
        self._conn.send((path, args, kwargs))
        ok, value = self._conn.recv()
        if not ok:
            raise RuntimeError(value)
        return value

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self._call(name, *args, **kwargs)

    def close(self) -> None:
        self._conn.send(None)
        self._process.join(10)


def _serve_stand_in(conn: Any) -> None:
    with stand_in() as stripe:
        while True:
            message = conn.recv()
            if message is None:
                return
            path, args, kwargs = message
            try:
                target: Any = stripe
                for part in path.split("."):
                    target = getattr(target, part)
                value = target(*args, **kwargs) if callable(target) else target
                conn.send((True, value))
            except Exception as error:  # reported to the caller
                conn.send((False, f"{type(error).__name__}: {error}"))
