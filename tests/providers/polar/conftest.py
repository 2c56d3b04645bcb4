"""Fixtures for the Polar suite: the app switched to Polar by config alone, against the stand-in.

Everything goes through the real ``polar`` SDK over HTTP to ``PolarStandIn``, and webhooks come
back over HTTP too: the app is served on 127.0.0.1 so the stand-in can deliver to
``/billing/webhooks/polar`` exactly as Polar would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from werkzeug.serving import BaseWSGIServer, make_server

from flask_seat_billing import Plan, Product
from flask_seat_billing.testing.polar_server import PolarStandIn, generate_webhook_secret
from tests.apps import AppUnderTest
from tests.conftest import app_factory


@dataclass
class PolarWorld:
    """The stand-in, its products, and the webhook secret the app is configured with."""

    api: PolarStandIn
    team: str  # product id of the "team-monthly" plan: 1..50 seats
    capped: str  # product id of the "capped" plan: 2..5 seats
    secret: str

    def products(self) -> list[Product]:
        return [
            Product(
                id="team",
                name="Team",
                plans=[
                    Plan(name="team-monthly", plan_id=self.team, cost=10),
                    Plan(name="capped", plan_id=self.capped, cost=10),
                ],
            )
        ]


def polar_world(
    stand_in: PolarStandIn,
    *,
    team_maximum_seats: int | None = 50,
    like: PolarWorld | None = None,
) -> PolarWorld:
    """The products of the Polar suite in ``stand_in`` (tests/behaviour lifts the team cap).

    ``like`` makes them again with that world's ids and secret, after a ``reset``."""
    team = stand_in.create_product(
        "Team", price_per_seat=1000, maximum_seats=team_maximum_seats,
        id=like.team if like else None,
    )
    capped = stand_in.create_product(
        "Capped", price_per_seat=1000, minimum_seats=2, maximum_seats=5,
        id=like.capped if like else None,
    )
    secret = like.secret if like else generate_webhook_secret()
    return PolarWorld(stand_in, team["id"], capped["id"], secret)


@pytest.fixture
def polar(polar_stand_in: PolarStandIn) -> PolarWorld:
    return polar_world(polar_stand_in)


AppFactory = Callable[..., AppUnderTest]


@pytest.fixture
def make_app(database_url: str, polar: PolarWorld) -> Iterator[AppFactory]:
    """Build Polar apps wired to the stand-in; each is torn down after the test."""
    config = {
        "SEAT_BILLING_PROVIDER": "polar",
        "SEAT_BILLING_POLAR_SERVER_URL": polar.api.url,
        "SEAT_BILLING_POLAR_WEBHOOK_SECRET": polar.secret,
    }
    with app_factory(database_url, config, products=polar.products()) as factory:
        yield factory


@pytest.fixture
def t(make_app: AppFactory) -> Iterator[AppUnderTest]:
    """A default Polar app (inline mode) inside an app context."""
    app = make_app()
    with app.app.app_context():
        yield app


@pytest.fixture
def served(t: AppUnderTest, polar: PolarWorld) -> Iterator[str]:
    """The app served over HTTP, registered as the stand-in's webhook endpoint; yields its URL."""
    server: BaseWSGIServer = make_server("127.0.0.1", 0, t.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    polar.api.add_webhook_endpoint(f"{url}/billing/webhooks/polar", secret=polar.secret)
    try:
        yield url
    finally:
        server.shutdown()
        thread.join(5)


def subscribe(
    t: AppUnderTest, polar: PolarWorld, org_id: Any, *, plan: str = "team-monthly",
    seats: int | None = None,
) -> str:
    """Give an organization a Polar subscription in the stand-in and record it locally."""
    product = {"team-monthly": polar.team, "capped": polar.capped}[plan]
    quantity = seats if seats is not None else max(1, t.billing.billable_seats(org_id))
    sub = polar.api.create_subscription(
        product, seats=quantity, external_customer_id=str(org_id),
        metadata={"organization_id": str(org_id), "plan": plan},
    )
    t.billing.link_subscription(org_id, sub["id"])
    return str(sub["id"])


def seat_writes(polar: PolarWorld) -> list[Any]:
    """Seat writes Polar applied (not faulted requests)."""
    return [r for r in polar.api.writes() if r.path.startswith("/v1/subscriptions/")]
