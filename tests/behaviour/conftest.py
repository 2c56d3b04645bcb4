"""One behaviour suite, run once per provider: the ``provider`` fixture is parameterised.

As Flask-SQLAlchemy's own tests run every test on each model-base setup through a parameterised
fixture, every test here that asks for ``provider`` (or ``t``, ``make_app``) runs on Stripe and
on Polar. The test sees only the provider-neutral :class:`World`: the stand-in through its shared
interface (:class:`~flask_seat_billing.testing.ProviderStandIn`), an app factory configured for
that provider, a neutral ``subscribe`` and ``seats``, and the provider's capabilities. Where a
provider cannot do what a test needs, the test says so with ``provider.require(flag)``, which
skips with the capability's reason, and only then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from flask_seat_billing import Plan, Product
from flask_seat_billing.testing import ProviderStandIn, StandInCapabilities
from flask_seat_billing.testing._standin import RecordedRequest
from tests.apps import AppUnderTest
from tests.apps import products as stripe_products
from tests.behaviour.dialects import POLAR, STRIPE, Dialect
from tests.conftest import app_factory, stock_stripe
from tests.providers.polar.conftest import polar_world
from tests.web_helpers import Answer, Served, allow_own_organization, serve

AppFactory = Callable[..., AppUnderTest]

PROVIDERS = ["stripe", "polar"]


@dataclass
class World:
    """A provider as a behaviour test sees it."""

    name: str
    stand_in: ProviderStandIn
    make_app: AppFactory
    products: list[Product]
    plan: Plan  # the default per-seat monthly plan
    webhook_secret: str
    dialect: Dialect
    #: Makes the stand-in's catalogue again, with the same ids, after a ``reset``.
    restock: Callable[[], object]

    @property
    def capabilities(self) -> StandInCapabilities:
        return self.stand_in.capabilities

    def require(self, flag: str) -> None:
        """Skip the running test, with the reason, when this provider lacks ``flag``."""
        if not self.capabilities.has(flag):
            pytest.skip(self.capabilities.why_not(flag))

    @property
    def other_plan(self) -> Plan:
        """A configured plan other than :attr:`plan` (Stripe's pro-yearly, Polar's capped)."""
        return next(p for product in self.products for p in product.plans if p != self.plan)

    def unconfigured_plan(self) -> Plan:
        """A plan the provider sells that the app does not know (a new price or product)."""
        return self.dialect.unconfigured_plan(self.stand_in)

    def later(self) -> None:
        """Let the provider's clock move on, so that what is created next is newer: Stripe's
        clock counts whole seconds (the stand-in's is moved a minute on), Polar's counts
        microseconds and moves by itself."""
        self.dialect.later(self.stand_in)

    def plan_named(self, name: str) -> Plan:
        return next(p for product in self.products for p in product.plans if p.name == name)

    def subscribe(
        self,
        t: AppUnderTest,
        org_id: Any,
        seats: int | None = None,
        status: str = "active",
        plan: str | None = None,
    ) -> str:
        """Give an organization a subscription in the stand-in and link it in the app; seats
        default to the organization's billable count."""
        chosen = self.plan if plan is None else self.plan_named(plan)
        quantity = seats if seats is not None else t.billing.billable_seats(org_id)
        subscription_id = self.stand_in.subscribe(org_id, chosen, quantity, status=status)
        t.billing.link_subscription(org_id, subscription_id)
        return subscription_id

    def seats(self, subscription_id: str, plan: str | None = None) -> int:
        """The seats the provider bills now. A subscription the stand-in did not create itself
        (a checkout's) is read as one of ``plan``, by default the world's plan."""
        if plan is not None:
            return self.stand_in.seats(subscription_id, self.plan_named(plan))
        try:
            return self.stand_in.seats(subscription_id)
        except KeyError:
            return self.stand_in.seats(subscription_id, self.plan)

    def remote_state(self) -> list[tuple[Any, ...]]:
        """What the app's local subscription rows should say (``web_helpers.local_state``): the
        provider's subscriptions, linked by their metadata, all on the world's plan."""
        s = self.stand_in
        return sorted(
            (sub, s.subscription(sub)["metadata"].get("organization_id"),
             s.subscription_status(sub), self.seats(sub), self.plan.name,
             s.cancel_at_period_end(sub))
            for sub in s.subscription_ids()
        )

    def seat_writes(self) -> list[RecordedRequest]:
        """Writes to subscriptions the provider applied (not faulted, not replayed)."""
        return self.stand_in.subscription_writes()

    def fail_seat_writes(self, count: int, status: int) -> None:
        """Make the next ``count`` seat writes fail with ``status`` (reads still answer)."""
        method, path = self.dialect.seat_write
        self.stand_in.faults.fail_next(count, status=status, path_prefix=path, method=method)

    def reset(self) -> None:
        """Forget everything the provider holds but its catalogue (plans keep their ids)."""
        self.stand_in.reset()
        self.restock()

    def app_config(self) -> dict[str, Any]:
        """The config keys that point an app at this provider, with its webhook secret."""
        return self.stand_in.app_config(self.webhook_secret)

    def attach_source(self, database_url: str, **config: Any) -> str:
        """Python that builds this world's app in another process, on existing tables, as
        ``t`` (for tests that crash a process on purpose); ``config`` adds settings."""
        config = {**self.app_config(), **config}
        return (
            "from flask_seat_billing import Plan, Product\n"
            "from tests.apps import build_app\n"
            f"t = build_app({database_url!r}, config={config!r}, create=False,"
            f" products={self.products!r})\n"
        )

    def delivered(self) -> None:
        """Deliver every pending event; each must be acknowledged."""
        deliveries = self.stand_in.deliver_pending()
        assert all(d.ok for d in deliveries), [d for d in deliveries if not d.ok]

    def serve(self, config: dict[str, Any] | None = None, **options: Any) -> Iterator[Served]:
        """Build an app (with an authorization like a real app's), serve it over HTTP and
        register it as the stand-in's webhook endpoint; yields it inside an app context."""
        t = self.make_app(config, **options)
        allow_own_organization(t)
        for served in serve(t, provider=self.name):
            self.stand_in.add_webhook_endpoint(served.webhook_url, self.webhook_secret)
            with t.app.app_context():
                yield served

    def post_event(self, web: Served, payload: bytes, *, event_id: str, offset: int = 0) -> Answer:
        """POST a hand-made event to the app, validly signed (``offset`` shifts its time)."""
        import time

        headers = self.stand_in.webhook_headers(
            payload, self.webhook_secret, event_id=event_id, timestamp=int(time.time()) + offset
        )
        return web.post(web.webhook_url, data=payload, headers=headers)

    def checkout(self, web: Served, org_id: Any, plan: str | None = None, **extra: Any) -> Answer:
        """POST the app's own checkout route as a member of ``org_id`` (JSON answer)."""
        return web.checkout(org_id, plan or self.plan.name, **extra)

    def checkout_id(self, answer: Answer) -> str:
        """The provider's checkout id in a checkout answer."""
        return str(answer.json["id"])

    def writes_to(self, subscription_id: str) -> list[RecordedRequest]:
        """Applied writes to one subscription (to its seat item on Stripe)."""
        return self.dialect.writes_to(self.stand_in, subscription_id)

    def checkout_subscription(self, t: AppUnderTest, org_id: Any, plan: str | None = None) -> str:
        """Subscribe through the app's own checkout route and pay in the stand-in; no webhook
        is delivered. The subscription carries the owner tag the app recorded."""
        if t.billing._hooks.authorize is None:
            t.billing.authorize(lambda request, organization_id, action: True)
        answer = t.app.test_client().post(
            "/billing/checkout",
            json={"organization_id": org_id, "plan": plan or self.plan.name},
            headers={"Accept": "application/json", "X-User-Org": str(org_id)},
        )
        assert answer.status_code == 200, answer.text
        checkout_id = str((answer.json or {})["id"])
        self.stand_in.complete_checkout(checkout_id)
        subscription_id = self.stand_in.checkout_subscription_id(checkout_id)
        assert subscription_id is not None
        return subscription_id

    def checkout_posts(self) -> list[RecordedRequest]:
        return self.dialect.checkout_posts(self.stand_in.requests)

    def portal_posts(self) -> list[RecordedRequest]:
        return self.dialect.portal_posts(self.stand_in.requests)


def _stripe_world(request: pytest.FixtureRequest, database_url: str) -> Iterator[World]:
    stand_in = request.getfixturevalue("stripe")  # tests/conftest.py: the suite's prices
    secret = stand_in.new_webhook_secret()
    products = stripe_products()
    with app_factory(database_url, stand_in.app_config(secret), products=products) as factory:
        yield World(
            "stripe", stand_in, factory, products, products[0].plans[0], secret, STRIPE,
            restock=lambda: stock_stripe(stand_in),
        )


def _polar_world(request: pytest.FixtureRequest, database_url: str) -> Iterator[World]:
    world = polar_world(request.getfixturevalue("polar_stand_in"), team_maximum_seats=None)
    products = world.products()
    config = world.api.app_config(world.secret)
    with app_factory(database_url, config, products=products) as factory:
        yield World(
            "polar", world.api, factory, products, products[0].plans[0], world.secret, POLAR,
            restock=lambda: polar_world(world.api, team_maximum_seats=None, like=world),
        )


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest, database_url: str) -> Iterator[World]:
    """The provider under test, once per entry of :data:`PROVIDERS`."""
    build = {"stripe": _stripe_world, "polar": _polar_world}[request.param]
    yield from build(request, database_url)


@pytest.fixture
def make_app(provider: World) -> AppFactory:
    """Build apps configured for the provider under test; each is torn down after the test."""
    return provider.make_app


@pytest.fixture
def t(make_app: AppFactory) -> Iterator[AppUnderTest]:
    """A default app (inline mode) inside an app context."""
    app = make_app()
    with app.app.app_context():
        yield app


@pytest.fixture
def web(provider: World) -> Iterator[Served]:
    """A default app served over HTTP, with authorization and the provider's webhook secret."""
    yield from provider.serve()
