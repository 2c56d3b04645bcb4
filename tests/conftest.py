"""Fixtures: a fresh app per test, on SQLite or PostgreSQL, talking to the Stripe stand-in.

``SEAT_BILLING_TEST_DATABASE=postgresql`` runs the whole suite on PostgreSQL
(``SEAT_BILLING_TEST_POSTGRES_URL``, default the local server); tests that only mean something
on PostgreSQL use the ``postgres_url`` fixture. With ``SEAT_BILLING_REQUIRE_POSTGRES=1`` (CI) an
unreachable PostgreSQL fails those tests instead of skipping them.

Each run works in a database of its own on that server (tests/run_database.py), created when the
session starts and dropped when it ends, so two runs on one machine never drop each other's
tables; the variable is pointed at it for the whole run, subprocesses included.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests import run_database
from tests.apps import (
    BASE_PRICE,
    SEAT_ONLY_PRICE,
    SEAT_PRICE,
    YEARLY_BASE,
    YEARLY_SEAT,
    AppUnderTest,
    build_app,
    teardown_app,
)

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/seat_billing_test"


def pytest_configure(config: pytest.Config) -> None:
    base = os.environ.get("SEAT_BILLING_TEST_POSTGRES_URL", DEFAULT_PG)
    run_url = run_database.create(base)
    if run_url is not None:  # unreachable: the fixtures skip, or fail in CI, as before
        config.stash[_RUN_DATABASE] = (os.environ.get("SEAT_BILLING_TEST_POSTGRES_URL"), run_url)
        os.environ["SEAT_BILLING_TEST_POSTGRES_URL"] = run_url


def pytest_unconfigure(config: pytest.Config) -> None:
    previous, run_url = config.stash.get(_RUN_DATABASE, (None, None))
    if run_url is None:
        return
    if previous is None:
        os.environ.pop("SEAT_BILLING_TEST_POSTGRES_URL", None)
    else:
        os.environ["SEAT_BILLING_TEST_POSTGRES_URL"] = previous
    run_database.drop(run_url)


_RUN_DATABASE = pytest.StashKey[tuple[str | None, str | None]]()


def reachable_postgres(url: str | None = None) -> str:
    """``url`` (default: the suite's) if a server answers; else skip, or fail in CI."""
    url = url or os.environ.get("SEAT_BILLING_TEST_POSTGRES_URL", DEFAULT_PG)
    try:
        engine = sa.create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as error:
        if os.environ.get("SEAT_BILLING_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required but unreachable at {url}: {error}")
        pytest.skip(f"PostgreSQL unreachable at {url}: {error}")
    return url


@pytest.fixture
def postgres_url() -> str:
    """A reachable PostgreSQL database, for tests that need cross-process locking."""
    return reachable_postgres()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The database the suite runs on: SQLite by default, PostgreSQL when asked."""
    if os.environ.get("SEAT_BILLING_TEST_DATABASE", "sqlite") == "postgresql":
        return reachable_postgres()
    return f"sqlite:///{tmp_path / 'app.db'}"


@pytest.fixture
def stripe(stripe_stand_in: Any) -> Any:
    """The Stripe stand-in with the prices of tests/apps.py."""
    return stock_stripe(stripe_stand_in)


def stock_stripe(s: Any) -> Any:
    """Create the prices of tests/apps.py in a Stripe stand-in (again, after a ``reset``)."""
    product = s.create_product(name="Pro")["id"]
    seat_product = s.create_product(name="Seat")["id"]
    s.create_price(id=BASE_PRICE, product=product, unit_amount=1999, interval="month")
    s.create_price(id=SEAT_PRICE, product=seat_product, unit_amount=1000, interval="month")
    s.create_price(id=SEAT_ONLY_PRICE, product=seat_product, unit_amount=1000, interval="month")
    s.create_price(id=YEARLY_BASE, product=product, unit_amount=19999, interval="year")
    s.create_price(id=YEARLY_SEAT, product=seat_product, unit_amount=10000, interval="year")
    return s


AppFactory = Callable[..., AppUnderTest]


@contextmanager
def app_factory(
    database_url: str, base_config: dict[str, Any], **defaults: Any
) -> Iterator[AppFactory]:
    """Build apps on ``base_config`` (+ each call's config); tear every one down at the end."""
    built: list[AppUnderTest] = []

    def factory(config: dict[str, Any] | None = None, **options: Any) -> AppUnderTest:
        for name, value in defaults.items():
            options.setdefault(name, value)
        url = options.pop("database_url", database_url)
        t = build_app(url, config={**base_config, **(config or {})}, **options)
        built.append(t)
        return t

    try:
        yield factory
    finally:
        for t in built:
            teardown_app(t)


@pytest.fixture
def make_app(database_url: str, stripe: Any) -> Iterator[AppFactory]:
    """Build apps wired to the Stripe stand-in; each is torn down after the test."""
    with app_factory(database_url, {"SEAT_BILLING_STRIPE_API_BASE": stripe.url}) as factory:
        yield factory


@pytest.fixture
def t(make_app: AppFactory) -> Iterator[AppUnderTest]:
    """A default app (inline mode) inside an app context."""
    app = make_app()
    with app.app.app_context():
        yield app


def subscribe(
    t: AppUnderTest,
    stripe: Any,
    org_id: Any,
    *,
    plan: str = "pro-monthly",
    seats: int | None = None,
    status: str = "active",
) -> str:
    """Give an organization a subscription in the stand-in and record it locally."""
    prices = {
        "pro-monthly": [(BASE_PRICE, 1), (SEAT_PRICE, None)],
        "pro-yearly": [(YEARLY_BASE, 1), (YEARLY_SEAT, None)],
        "team-monthly": [(SEAT_ONLY_PRICE, None)],
    }[plan]
    quantity = seats if seats is not None else t.billing.billable_seats(org_id)
    items = [{"price": p, "quantity": q if q is not None else quantity} for p, q in prices]
    sub = stripe.create_subscription(
        items=items, metadata={"organization_id": str(org_id), "plan": plan}, status=status
    )
    t.billing.link_subscription(org_id, sub["id"])
    return str(sub["id"])


def seat_price_of(plan: str) -> str:
    return {"pro-monthly": SEAT_PRICE, "pro-yearly": YEARLY_SEAT, "team-monthly": SEAT_ONLY_PRICE}[
        plan
    ]


def checkout_subscription(
    t: AppUnderTest, stripe: Any, org_id: Any, *, plan: str = "pro-monthly"
) -> str:
    """Subscribe through the app's own ``/billing/checkout`` and pay in the stand-in; no webhook
    is delivered. The subscription carries the owner tag the app recorded, as in production."""
    if t.billing._hooks.authorize is None:
        t.billing.authorize(lambda request, organization_id, action: True)
    answer = t.app.test_client().post(
        "/billing/checkout", json={"organization_id": org_id, "plan": plan},
        headers={"Accept": "application/json", "X-User-Org": str(org_id)},
    )
    assert answer.status_code == 200, answer.text
    session = stripe.complete_checkout(str(answer.json["id"]))
    return str(session["subscription"])
